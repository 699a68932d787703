"""The command-line edge every entry point shares (`python -m jaxgenre.<tool>` and
launch.py): library logs cut to one line, and a problem the user can fix reported as
one `error: ...` line with exit status 2 instead of a traceback.

`run(main)` is each module's `if __name__ == "__main__":`. A `UserError` escaping
`main`, or an `OSError` that names a file (a path given on the command line that cannot
be read or written), is reported; anything else is a bug and keeps its traceback.
`shorten_library_logs` cuts orbax's and asyncio's failure echoes (launch.py calls it
after absl has set up logging).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Callable, NoReturn

from jaxgenre import errors


def run(main: Callable[[], int]) -> NoReturn:
    """Exits with `main()`'s status, or 2 after one line for a user's problem."""
    shorten_library_logs()
    try:
        status = main()
    except errors.UserError as e:
        status = errors.report(e)
    except OSError as e:
        if e.filename is None:
            raise
        status = errors.report(e)
    sys.exit(status)


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
