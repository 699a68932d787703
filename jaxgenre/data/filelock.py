"""One process at a time per fetched asset and per unpacked folder.

Every process of a multi-process run opens the same data source, so each fetches the
same asset into the same data home and unpacks it into the same folder. An exclusive
`fcntl.flock` on `<path>.lock` makes the second one wait (saying so, once) and then
find the verified file or the finished folder instead of racing over one `.part` file
or one rename.

The lock file is removed by its holder before the lock is released; a waiter that then
gets the lock on the removed file notices (its inode is no longer the path's) and locks
the path afresh, so two processes never both hold the lock. Where `fcntl` does not exist
(Windows) there is no lock: a single process is as safe as before.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Callable, Iterator

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None


def _acquire(path: str, waiting: str, say: Callable[[str], None]) -> int:
    """An open descriptor of `path` holding its exclusive lock."""
    said = False
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)  # O_RDONLY: others' files too
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not said:
                    say(waiting)
                    said = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            return fd
        os.close(fd)  # the holder before us removed this file: lock the path's new one


@contextlib.contextmanager
def exclusive(path: str, *, waiting: str, say: Callable[[str], None]) -> Iterator[None]:
    """Holds the exclusive lock `path` for the block; if another process holds it, says
    `waiting` once and waits for it. Raises `OSError` when the file cannot be created
    (a NUL in `path` too, which `os.open` reports as a `ValueError`)."""
    if "\0" in path:
        raise OSError(errno.EINVAL, "a file name cannot hold a NUL character", path)
    if fcntl is None:
        yield
        return
    fd = _acquire(path, waiting, say)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
