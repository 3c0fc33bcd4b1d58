"""Inside a notebook kernel, log lines and reprs are plain text (no terminal colour codes)."""

from __future__ import annotations

import logging

from kedro.logging import RichHandler

from xai_kedro.integration.console import PLAIN_FORMAT, in_notebook_kernel, plain_console
from xai_kedro.integration.hooks import NotebookConsoleHook


def test_rich_handlers_become_plain_stream_handlers_at_their_level():
    logger = logging.getLogger("tests.console")
    other = logging.NullHandler()
    logger.addHandler(RichHandler(level=logging.WARNING))
    logger.addHandler(other)
    try:
        plain_console(logger)
        kinds = [type(h) for h in logger.handlers]
        assert kinds == [logging.NullHandler, logging.StreamHandler]
        plain = logger.handlers[1]
        assert plain.level == logging.WARNING
        assert plain.formatter._fmt == PLAIN_FORMAT
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)


def test_outside_a_kernel_the_hook_leaves_the_console_alone():
    assert not in_notebook_kernel()
    root = logging.getLogger()
    before = list(root.handlers)
    NotebookConsoleHook().after_context_created(context=None)
    assert root.handlers == before
