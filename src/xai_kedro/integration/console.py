"""Plain console output inside a notebook kernel.

Kedro's rich log handler writes terminal colour codes and installs rich's pretty printer as
IPython's text formatter, so every saved notebook output (log lines, data frame reprs) would
carry escape codes. Kedro's logging configuration accepts handler classes from `logging` and
`kedro.logging` only, so the switch happens after the context is created
(`hooks.NotebookConsoleHook`): in a kernel the notebook is the console, with plain log lines and
IPython's own plain-text reprs.
"""

from __future__ import annotations

import logging
import sys

PLAIN_FORMAT = "%(levelname)s %(name)s: %(message)s"


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython, not a plain interpreter)."""
    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and "ZMQInteractiveShell" in type(shell).__name__


def _plain_reprs() -> None:
    """Undo rich's pretty printer: IPython's plain-text formatter for text/plain again."""
    from IPython import get_ipython
    from IPython.core.formatters import PlainTextFormatter

    display = get_ipython().display_formatter
    if type(display.formatters["text/plain"]) is not PlainTextFormatter:
        display.formatters["text/plain"] = PlainTextFormatter(parent=display)


def plain_console(logger: logging.Logger | None = None) -> None:
    """Replace rich handlers on ``logger`` (the root logger) by plain stream handlers at the same
    level, and restore IPython's plain reprs when in a kernel."""
    import rich.logging

    target = logger or logging.getLogger()
    for handler in list(target.handlers):
        if isinstance(handler, rich.logging.RichHandler):
            plain = logging.StreamHandler(sys.stderr)
            plain.setLevel(handler.level)
            plain.setFormatter(logging.Formatter(PLAIN_FORMAT))
            target.removeHandler(handler)
            target.addHandler(plain)
    if in_notebook_kernel():
        _plain_reprs()
