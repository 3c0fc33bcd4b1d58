"""xai-kedro: do attention-based XAI metrics of LoRA-tuned ViTs predict their robustness?"""

__version__ = "0.1.0"
