"""One HTTP transfer into a `.part` file, against servers that may be hostile: the
part of `download.fetch` that speaks HTTP.

- Resumes with a Range request; a server that ignores Range is read from the start.
- Takes no more than a cap (the asset's size, or `config.data.download.max_bytes`): a
  Content-Length announcing more is refused before the body is read, and a body without
  one is cut off at the cap.
- Reads what has arrived (`read1`), not fixed-size blocks, so a deadline over the whole
  transfer holds against a server sending a byte now and then, which a socket timeout
  (per wait) never catches.
- Follows redirects only to http(s), and never from https down to http.
"""

from __future__ import annotations

import http.client
import os
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


OPENER = urllib.request.build_opener(SafeRedirectHandler)


def time_left(due: Tuple[float, float], timeout: float) -> float:
    """The socket timeout for the next wait: `timeout`, or less as the deadline
    `due` = (monotonic time, its length in seconds) nears; `Refused` once it has passed."""
    left = due[0] - time.monotonic()
    if left <= 0:
        raise Refused(f"not done within the {due[1]:g} s deadline ({KEY}.deadline_seconds); "
                      f"run again to resume it")
    return min(timeout, left)


def get(url: str, partial: str, *, name: str, size: Optional[int], timeout: float,
        progress: bool, cap: Tuple[int, str], due: Tuple[float, float]) -> None:
    """Fetches `url` into `partial` (appending to what is there when the server honours
    Range); `name` labels the progress bar, `size` is the asset's if known, `cap` is
    (the most bytes to take, how to say it)."""
    have = os.path.getsize(partial) if os.path.isfile(partial) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "jaxgenre"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = OPENER.open(request, timeout=time_left(due, timeout))
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is already whole (or too long)
            if size is None or have == size:
                return
            os.remove(partial)
            return get(url, partial, name=name, size=size, timeout=timeout, progress=progress,
                       cap=cap, due=due)
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
