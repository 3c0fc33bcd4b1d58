"""The torch thread policy of every process that runs torch outside a Spark task.

OpenMP's default wait policy lets an idle worker thread spin for a while before it sleeps. On
a 2-core machine that something else also uses (a second process, a Spark worker, the test
run), the spinning threads take the cores the working ones need: a plain forward with 2 threads
measured 3.9x slower than with the passive policy, token-drop (one short forward per step) 16x
(`benchmarks/thread_policy.py`, figures in docs/benchmarks.md). The passive policy only changes
what idle threads do, never how work is split, so results stay bit-identical.

libgomp reads `OMP_WAIT_POLICY` once, when torch loads it: `xai_kedro/__init__.py` applies the
policy before any module of the package imports torch, and every process started from this one
(Spark's Python workers, subprocesses) inherits it. A user's own setting always wins.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"
PASSIVE = "PASSIVE"


def apply_wait_policy(environ: dict[str, str] | None = None) -> str:
    """Set the passive wait policy unless the user chose one; returns the policy in force."""
    env = os.environ if environ is None else environ
    return env.setdefault(WAIT_POLICY_VARIABLE, PASSIVE)


def torch_loaded_before_policy() -> bool:
    """True when torch was imported before the policy could apply (the policy is then late)."""
    return "torch" in sys.modules and WAIT_POLICY_VARIABLE not in os.environ
