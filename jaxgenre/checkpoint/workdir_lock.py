"""One run per work directory: `hold(workdir)` takes an exclusive lock on
`<workdir>/.lock` for as long as the process lives, and writes who holds it (process
id, host, start time, command line) into the file.

A second run on the same directory is refused with a `UserError` naming the holder.
The lock is the kernel's (`fcntl.flock`), so a run killed with `kill -9` releases it
with its last breath: the next run takes it over and overwrites the stale holder's
line. flock is advisory and local: on a network filesystem that does not support it, two
hosts are not kept apart (a filesystem that refuses it outright — ENOLCK — is reported
as such, not as "in use").

A lock lives on the file, not on its name: after `rm -rf <workdir>` under a live run a
new run creates a new `.lock` and takes it. So the live run checks, at every checkpoint
save (`check_everywhere`, from `checkpoint.Checkpoints.save`), that the path still names
the file it locked, and stops with one line when it does not. In a multi-process run
only process 0 takes the lock; `hold_everywhere` / `check_everywhere` broadcast its
verdict, so every process stops together with the same line instead of running into a
collective that waits for a process 0 that has gone.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import time
from typing import IO, Callable, Dict, Optional

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


def _names(f: IO, path: str) -> bool:
    """Whether `path` is (still) the file `f` has open."""
    try:
        now, mine = os.stat(path), os.fstat(f.fileno())
    except OSError:
        return False
    return (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev)


def hold(workdir: str) -> None:
    """Takes `workdir`'s lock for the rest of this process, or raises a `UserError`
    naming the process that has it (or the OS's reason when locking itself fails).
    Taking it twice in one process is a no-op."""
    workdir = os.path.abspath(workdir)
    if workdir in _held:
        return
    path = os.path.join(workdir, FILE_NAME)
    for _ in range(10):  # the file replaced between open and flock: lock the new one
        try:
            os.makedirs(workdir, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot use {workdir} as the work directory ({e.strerror}): "
                            f"give another --workdir") from None
        try:
            f = open(path, "a+")
        except OSError as e:
            raise UserError(f"cannot lock {path} ({e.strerror}): give a --workdir this user "
                            f"can write to") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            f.close()
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UserError(f"work directory {workdir} is in use by {holder(workdir)}; "
                                f"wait for that run to end (or stop it) or give another "
                                f"--workdir") from None
            raise UserError(f"cannot lock {path} ({os.strerror(e.errno)}): its filesystem may "
                            f"not support flock; give a --workdir on a local disk") from None
        if _names(f, path):
            break
        f.close()
    else:
        raise UserError(f"cannot lock {path}: it was replaced ten times while being locked; "
                        f"stop whatever keeps re-creating it, or give another --workdir")
    f.seek(0)
    f.truncate()
    f.write(f"process {os.getpid()} on {socket.gethostname()}, started "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n")
    f.flush()
    _held[workdir] = f


def problem(path: Optional[str] = None) -> Optional[str]:
    """Why this process no longer holds the lock of `path`'s work directory (the held
    work directory that is `path` or a folder above it; every held one when None): its
    lock file removed or replaced. None when all is well or no lock is held there."""
    path = None if path is None else os.path.abspath(path)
    for workdir, f in list(_held.items()):
        if path is not None and path != workdir and not path.startswith(workdir + os.sep):
            continue
        lock = os.path.join(workdir, FILE_NAME)
        if not _names(f, lock):
            now = (f"it now says: {holder(workdir)}" if os.path.exists(lock)
                   else "the folder was deleted" if not os.path.isdir(workdir)
                   else "it is gone")
            return (f"the lock file {lock} of this run was removed or replaced while it ran "
                    f"({now}): this run stops rather than write into a folder another run "
                    f"may be using; run it again (with another --workdir if one is using "
                    f"this one)")
    return None


def check(path: Optional[str] = None) -> None:
    """A `UserError` saying `problem(path)` when there is one."""
    reason = problem(path)
    if reason:
        raise UserError(reason)


def _agree(on_process_0: Callable[[], Optional[str]]) -> None:
    """Runs `on_process_0` (a reason to stop, or None) on process 0 only and raises that
    reason as a `UserError` on every process: broadcast before any other collective, so
    no process runs on into one that process 0 will never join."""
    import jax

    reason = on_process_0() if jax.process_index() == 0 else None
    if jax.process_count() > 1:
        import numpy as np
        from jax.experimental import multihost_utils

        data = np.zeros(4096, np.uint8)
        raw = (reason or "").encode("utf-8")[:data.size]
        data[:len(raw)] = np.frombuffer(raw, np.uint8)
        data = np.asarray(multihost_utils.broadcast_one_to_all(data), np.uint8)
        reason = bytes(data).rstrip(b"\0").decode("utf-8", "replace") or None
    if reason:
        raise UserError(reason)


def hold_everywhere(workdir: str) -> None:
    """`hold(workdir)` on process 0 of a (multi-process) run; a refusal there stops
    every process with the same one line."""
    def take() -> Optional[str]:
        try:
            hold(workdir)
        except UserError as e:
            return str(e)
        return None

    _agree(take)


def check_everywhere(path: Optional[str] = None) -> None:
    """`check(path)` on process 0 (which holds the lock), its verdict on every process."""
    _agree(lambda: problem(path))


def release(workdir: str) -> None:
    """Gives the lock back (the end of the process does this too)."""
    f = _held.pop(os.path.abspath(workdir), None)
    if f is not None:
        fcntl.flock(f, fcntl.LOCK_UN)
        f.close()
