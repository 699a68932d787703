"""The one exception type for problems a user causes and can fix: a config value, a
path, a data folder, a weights file, an audio file handed to predict.

Library code raises a `UserError` (or a subclass) with one sentence that names the
thing and the fix; the command-line edges (`launch.py`, `python -m jaxgenre.predict`,
`python -m jaxgenre.data.inventory`, `python -m jaxgenre.data.tfds_gtzan`) print it as
`error: ...` on one line and exit with status 2, without a traceback. Anything else is
a bug in jaxgenre and keeps its traceback.
"""

from __future__ import annotations

import logging
import os
import sys

EXIT_USER_ERROR = 2


class UserError(ValueError):
    """A problem the user can fix; its message says what and how."""


def report(error: BaseException) -> int:
    """Prints `error` as one line on stderr and returns the exit status for it."""
    message = " ".join(str(error).split())
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


class _OneLineLibraryLogs(logging.Filter):
    """Orbax logs whole tracebacks (and TensorStore specs) from its background threads
    when a write fails, and asyncio logs the same failures again when their tasks are
    collected: hundreds of lines around the one that matters. jaxgenre reports those
    failures itself (`checkpoint`), so their records are cut to their first line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if f"{os.sep}orbax{os.sep}" in record.pathname or record.name == "asyncio":
            lines = record.getMessage().strip().splitlines()
            record.msg, record.args = (lines[0] if lines else "")[:200], ()
            record.exc_info = record.exc_text = record.stack_info = None
        return True


def shorten_library_logs() -> None:
    """Cuts orbax's and asyncio's log records to one line on every handler of the root
    logger (absl's included). For command-line entry points, after logging is set up."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _OneLineLibraryLogs) for f in handler.filters):
            handler.addFilter(_OneLineLibraryLogs())
