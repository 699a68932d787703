"""One HTTP transfer into a `.part` file, against servers that may be hostile: the
part of `download.fetch` that speaks HTTP.

- Resumes with a Range request; a server that ignores Range is read from the start.
- Takes no more than a cap (the asset's size, or `config.data.download.max_bytes`): a
  Content-Length announcing more is refused before the body is read, and a body without
  one is cut off at the cap.
- A deadline over the whole transfer (connect, headers, redirects, chunk-size lines,
  body): a socket timeout bounds each wait, never their sum, so a server sending a byte
  now and then would pass it; and http.client reads a header or chunk line to its end
  (up to 100 headers of 64 KiB each) where no check of ours runs. A watchdog timer
  shuts down every socket of the transfer at the deadline, which ends any read blocked
  in there; the transfer then reports the deadline, not the damage the cut did.
- Follows redirects only to http(s), and never from https down to http.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional, Tuple

from tqdm import tqdm

CHUNK = 1 << 20
KEY = "config.data.download"


class Refused(Exception):
    """A transfer stopped on purpose (too big, too slow); its message is the reason."""


class RedirectRefused(urllib.error.URLError):
    """A redirect to a scheme other than http(s), or from https down to http."""


class SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handler, refusing redirects to anything but http(s) (urllib's
    own follows ftp too) and from https to http (the rest would travel in the clear)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old = urllib.parse.urlparse(req.full_url).scheme.lower()
        new = urllib.parse.urlparse(newurl).scheme.lower()
        if new not in ("http", "https"):
            raise RedirectRefused(f"redirected to '{newurl}', refused: only http and https "
                                  f"redirects are followed")
        if old == "https" and new == "http":
            raise RedirectRefused(f"redirected from https to '{newurl}', refused: never from "
                                  f"https down to http")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


OPENER = urllib.request.build_opener(SafeRedirectHandler)  # no deadline: see `get`


def _late(due: Tuple[float, float]) -> Refused:
    return Refused(f"not done within the {due[1]:g} s deadline ({KEY}.deadline_seconds); "
                   f"run again to resume it")


def time_left(due: Tuple[float, float], timeout: float) -> float:
    """The socket timeout for the next wait: `timeout`, or less as the deadline
    `due` = (monotonic time, its length in seconds) nears; `Refused` once it has passed."""
    left = due[0] - time.monotonic()
    if left <= 0:
        raise _late(due)
    return min(timeout, left)


class Watchdog:
    """Shuts down, at `due`, every socket opened through `connection(...)` (and any opened
    after that at once). It holds a duplicate of each socket's descriptor: `shutdown` acts
    on the connection itself, so it also ends a read on the TLS socket wrapped around the
    original, or one inside http.client's buffered reader. `fired` says it went off."""

    def __init__(self, due: Tuple[float, float]):
        self.fired = False
        self._lock = threading.Lock()
        self._sockets = []
        self._timer = threading.Timer(max(0.0, due[0] - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                _shut(sock)

    def _watch(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock.dup())
            if self.fired:
                _shut(self._sockets[-1])
        return sock

    def connection(self, http_class):
        """`http_class` (http.client's HTTP(S)Connection), its sockets watched."""
        def make(*args, **kwargs):
            conn = http_class(*args, **kwargs)
            # http.client makes every socket (TLS ones before wrapping) through this hook
            create = getattr(conn, "_create_connection", socket.create_connection)
            conn._create_connection = lambda *a, **k: self._watch(create(*a, **k))
            return conn
        return make

    def close(self) -> None:
        """Stops the timer and drops the duplicates (the transfer's own sockets stay)."""
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # closed by the other end already
        pass


class _WatchedHTTP(urllib.request.HTTPHandler):
    def __init__(self, watchdog: Watchdog):
        super().__init__()
        self.watchdog = watchdog

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(self.watchdog.connection(http_class), req, **kwargs)


class _WatchedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: Watchdog):
        super().__init__()
        self.watchdog = watchdog

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(self.watchdog.connection(http_class), req, **kwargs)


def get(url: str, partial: str, *, name: str, size: Optional[int], timeout: float,
        progress: bool, cap: Tuple[int, str], due: Tuple[float, float]) -> None:
    """Fetches `url` into `partial` (appending to what is there when the server honours
    Range); `name` labels the progress bar, `size` is the asset's if known, `cap` is
    (the most bytes to take, how to say it), `due` the deadline (monotonic time, its
    length in seconds), held for the whole transfer by a `Watchdog`. A `.part` left
    empty is removed (nothing to resume)."""
    time_left(due, timeout)
    watchdog = Watchdog(due)
    opener = urllib.request.build_opener(SafeRedirectHandler, _WatchedHTTP(watchdog),
                                         _WatchedHTTPS(watchdog))
    try:
        _get(opener, url, partial, name=name, size=size, timeout=timeout, progress=progress,
             cap=cap, due=due)
    except Exception as e:
        if watchdog.fired and not isinstance(e, Refused):
            raise _late(due) from None  # what the cut socket did is no news
        raise
    finally:
        watchdog.close()
        if os.path.isfile(partial) and os.path.getsize(partial) == 0:
            os.remove(partial)
    if watchdog.fired:  # an end of the body may be the cut: not known to be whole
        raise _late(due)


def _get(opener, url: str, partial: str, *, name: str, size: Optional[int], timeout: float,
         progress: bool, cap: Tuple[int, str], due: Tuple[float, float]) -> None:
    have = os.path.getsize(partial) if os.path.isfile(partial) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "jaxgenre"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = opener.open(request, timeout=time_left(due, timeout))
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is already whole (or too long)
            if size is None or have == size:
                return
            os.remove(partial)
            return _get(opener, url, partial, name=name, size=size, timeout=timeout,
                        progress=progress, cap=cap, due=due)
        raise
    with response:
        resumed = have and response.status == 206
        if not resumed:
            have = 0  # a server that ignores Range sends everything: start again
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.strip().isdigit() else None
        if length is not None and have + length > cap[0]:
            raise Refused(f"announces {have + length} bytes, more than {cap[1]}")
        with open(partial, "ab" if resumed else "wb") as out, tqdm(
                total=have + length if length is not None else size, initial=have, unit="B",
                unit_scale=True, unit_divisor=1024, desc=name, disable=not progress,
                leave=False) as bar:
            received = 0
            while True:
                time_left(due, timeout)
                block = response.read1(CHUNK)  # what has come, so a trickle meets the deadline
                if not block:
                    break
                received += len(block)
                if have + received > cap[0]:
                    raise Refused(f"sent more than {cap[1]}")
                out.write(block)
                bar.update(len(block))
        if length is not None and received < length:
            raise http.client.IncompleteRead(b"", length - received)
