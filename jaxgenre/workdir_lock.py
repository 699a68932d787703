"""One run per work directory: `hold(workdir)` takes an exclusive lock on
`<workdir>/.lock` for as long as the process lives, and writes who holds it (process
id, host, start time, command line) into the file.

A second run on the same directory is refused with a `UserError` naming the holder.
The lock is the kernel's (`fcntl.flock`), so a run killed with `kill -9` releases it
with its last breath: the next run takes it over and overwrites the stale holder's
line. In a multi-process run only process 0 takes it (the others share the folder).
flock is advisory and local: on a network filesystem that does not support it, two
hosts are not kept apart.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from typing import IO, Dict

from jaxgenre.errors import UserError

FILE_NAME = ".lock"
_held: Dict[str, IO] = {}  # workdir -> open lock file, kept open to keep the lock


def holder(workdir: str) -> str:
    """What the lock file says about who holds (or last held) `workdir`."""
    try:
        with open(os.path.join(workdir, FILE_NAME)) as f:
            return f.read().strip() or "an unknown process"
    except OSError:
        return "an unknown process"


def hold(workdir: str) -> None:
    """Takes `workdir`'s lock for the rest of this process, or raises a `UserError`
    naming the process that has it. Taking it twice in one process is a no-op."""
    workdir = os.path.abspath(workdir)
    if workdir in _held:
        return
    os.makedirs(workdir, exist_ok=True)
    f = open(os.path.join(workdir, FILE_NAME), "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        other = holder(workdir)
        f.close()
        raise UserError(f"work directory {workdir} is in use by {other}; wait for that run "
                        f"to end (or stop it) or give another --workdir") from None
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()} on {socket.gethostname()}, started "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n")
    f.flush()
    _held[workdir] = f


def release(workdir: str) -> None:
    """Gives the lock back (the end of the process does this too)."""
    f = _held.pop(os.path.abspath(workdir), None)
    if f is not None:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
