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
import warnings

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
        if record.name == "asyncio" and (
                "exception was never retrieved" in str(record.msg)
                or (record.exc_info and _through_orbax(record.exc_info[2]))):
            return False  # orbax's abandoned tasks and futures (jaxgenre uses no asyncio)
        if _in_orbax(record.pathname) or record.name == "asyncio":
            lines = record.getMessage().strip().splitlines()
            record.msg, record.args = (lines[0] if lines else "")[:200], ()
            record.exc_info = record.exc_text = record.stack_info = None
        return True


def _in_orbax(filename: str) -> bool:
    return f"{os.sep}orbax{os.sep}" in filename


def _through_orbax(traceback) -> bool:
    while traceback is not None:
        if _in_orbax(traceback.tb_frame.f_code.co_filename):
            return True
        traceback = traceback.tb_next
    return False


def _library_echo(error: BaseException, where) -> bool:
    """True for the echoes a failed orbax read or write leaves behind, which jaxgenre
    has already reported in one line: the exception of an abandoned orbax coroutine (it
    prints the whole TensorStore spec), and TensorStore's callbacks finding asyncio's
    loop closed."""
    code = getattr(where, "cr_code", None)
    if code is not None and _in_orbax(code.co_filename):
        return True
    return isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


def shorten_library_logs() -> None:
    """Cuts orbax's and asyncio's log records to one line on every handler of the root
    logger (absl's included), and drops the echoes of a failed orbax read or write that
    bypass logging (`_library_echo`; jaxgenre's own warning or error has said what
    failed). For command-line entry points, after logging is set up."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _OneLineLibraryLogs) for f in handler.filters):
            handler.addFilter(_OneLineLibraryLogs())
    if getattr(sys.unraisablehook, "jaxgenre", False):
        return
    unraisable, excepthook = sys.unraisablehook, sys.excepthook

    def quiet_unraisable(info):
        if not _library_echo(info.exc_value, info.object):
            unraisable(info)

    def quiet_excepthook(kind, error, traceback):
        if not _library_echo(error, None):
            excepthook(kind, error, traceback)

    quiet_unraisable.jaxgenre = True
    sys.unraisablehook, sys.excepthook = quiet_unraisable, quiet_excepthook
    # ... and the coroutines orbax abandons (jaxgenre has none of its own).
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited",
                            category=RuntimeWarning)
