"""The thread policy applies before torch loads and never overrides the user's choice."""

from __future__ import annotations

import os
import subprocess
import sys

from xai_kedro.core.common.threads import PASSIVE, WAIT_POLICY_VARIABLE, apply_wait_policy

_PROBE = (
    "import os, sys\n"
    "import xai_kedro.core.common.device\n"
    "assert 'torch' in sys.modules\n"
    "print(os.environ.get('OMP_WAIT_POLICY'))\n"
)


def _probe(env_update: dict[str, str | None]) -> str:
    env = dict(os.environ)
    for key, value in env_update.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_importing_the_package_sets_passive_before_torch_loads():
    assert _probe({WAIT_POLICY_VARIABLE: None}) == PASSIVE


def test_a_users_policy_wins():
    assert _probe({WAIT_POLICY_VARIABLE: "ACTIVE"}) == "ACTIVE"
    env = {WAIT_POLICY_VARIABLE: "active"}
    assert apply_wait_policy(env) == "active"
    assert apply_wait_policy({}) == PASSIVE
