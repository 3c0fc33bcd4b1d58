"""An expected user error in any node ends `kedro run` in one line naming the setting."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import make_tiny_project, run_kedro
from xai_kedro.core.common.errors import UserError
from xai_kedro.core.common.settings import SettingsError
from xai_kedro.integration.hooks import UserErrorHook


class _Node:
    name = "some_node"


def test_user_errors_become_one_line_exits_and_bugs_keep_their_traceback():
    hook = UserErrorHook()
    with pytest.raises(SystemExit) as stopped:
        hook.on_node_error(SettingsError("unknown setting a.b; allowed under a: c"), _Node())
    assert str(stopped.value) == "unknown setting a.b; allowed under a: c"
    assert stopped.value.__cause__ is None and stopped.value.__suppress_context__
    hook.on_node_error(KeyError("a bug"), _Node())  # not a user error: Kedro re-raises it
    assert issubclass(SettingsError, UserError)


@pytest.mark.slow  # a Kedro session
def test_a_typo_in_conf_ends_the_run_in_one_line(tmp_path, monkeypatch):
    project = make_tiny_project(tmp_path / "typo")
    typo = {"ingestion": {"max_file_byte": 3}}
    (project / "conf/tiny/parameters_typo.yml").write_text(yaml.safe_dump(typo))
    with pytest.raises(SystemExit) as stopped:
        run_kedro(project, monkeypatch, pipelines=["ingestion"])
    message = str(stopped.value)
    assert message.startswith("unknown setting ingestion.max_file_byte; allowed under ingestion:")
    assert "\n" not in message
