"""xai-kedro: do attention-based XAI metrics of LoRA-tuned ViTs predict their robustness?"""

from xai_kedro.core.common.threads import apply_wait_policy

# Before anything imports torch (libgomp reads the policy once, at load): see core.common.threads.
apply_wait_policy()

__version__ = "0.1.0"
