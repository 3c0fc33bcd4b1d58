"""Expected user errors: a setting, a path or a name the user can fix, told in one line.

An error class that mixes in `UserError` ends `kedro run` with its message alone (the project's
node-error hook turns it into `SystemExit`), never a traceback wall: the message must therefore
name the setting or path to fix. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Mixin base of the errors a user fixes in conf/ or on disk."""
