"""The one exception type for problems a user causes and can fix: a config value, a
path, a data folder, a weights file, an audio file handed to predict.

Library code raises a `UserError` (or a subclass) with one sentence that names the
thing and the fix; the command-line edge every entry point shares (`cli.run`, and
launch.py) prints it as `error: ...` on one line and exits with status 2, without a
traceback. Anything else is a bug in jaxgenre and keeps its traceback.
"""

from __future__ import annotations

import sys

EXIT_USER_ERROR = 2


class UserError(ValueError):
    """A problem the user can fix; its message says what and how."""


def report(error: BaseException) -> int:
    """Prints `error` as one line on stderr and returns the exit status for it."""
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR
