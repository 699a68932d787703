"""Files fetched and verified: one module every source and the ImageNet weights share.

    path = fetch(Asset(name="GTZAN genres.tar.gz", file="genres.tar.gz",
                       urls=(URL_1, URL_2), sha256=DIGEST), home=data_home())

- Mirrors are tried in order; each may be an http(s) URL, a `file://` URL or a plain
  path (a copy the user already has, or an internal mirror).
- HTTP downloads stream to `<file>.part` with a progress bar (bytes, rate, ETA) and
  resume after an interruption with a Range request; a server that ignores Range (200
  instead of 206) is read again from the start. A connection that stays silent for
  `timeout` seconds is an error, not a hang, and so is a transfer still going after
  `deadline` seconds, wherever it is (headers, chunk lines or body trickling a byte now
  and then; the `.part` is kept, so running again resumes it).
- No transfer takes more than the asset's size, or `max_bytes` when the size is not
  pinned (`config.data.download`): a body without Content-Length, or announcing more,
  is cut off and dropped. Redirects are followed only to http(s), and never from https
  down to http (`SafeRedirectHandler`).
- A folder (or anything but a file) at the final path is refused before any fetch.
- The finished file is verified (size, sha256) before it is renamed to its final name,
  so a half-written or wrong file never sits there. A verified file is not fetched again
  (no request is made). A file at the final path that fails the pin (a user's own
  copy, an older version) is renamed aside to `<file>.mismatch`, with a line saying so,
  never deleted.
- One process at a time per asset (`filelock` on `<file>.lock`): every process of a
  multi-process run fetches the same assets; the second waits, then uses the verified file.
- Every mirror failing raises `DownloadError` (a `UserError`) naming the asset, each URL
  with why it failed, and where to put the file by hand.

Archives are unpacked by `archive.extract` (re-exported here as `extract`).

Why the standard library's `urllib`: no HTTP client is in the core pins, and streaming,
Range and timeouts are all it takes; `requests` would add four packages for nothing
more here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Optional, Tuple

from jaxgenre.data import archive, filelock, http_transfer
from jaxgenre.data.archive import ArchiveError, Limits, UnsafeArchive, extract  # noqa: F401
from jaxgenre.data.http_transfer import SafeRedirectHandler  # noqa: F401
from jaxgenre.errors import UserError

ENV_HOME = "JAXGENRE_DATA"
KEY = http_transfer.KEY
_Refused = http_transfer.Refused


class DownloadError(UserError):
    """No mirror gave a verified copy of an asset."""


@dataclasses.dataclass(frozen=True)
class TransferLimits:
    """`config.data.download`: the cap on an asset of unknown size, and the deadline of
    one transfer."""
    max_bytes: int
    deadline_seconds: float

    @classmethod
    def from_config(cls, data=None) -> "TransferLimits":
        """From `config.data.download` (`data` is `config.data`; None: configs/base.py's)."""
        return archive.from_section(cls, data, "download")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class Asset:
    """A file to fetch: its display name, its file name under the home folder, the
    mirrors to try in order, and what it must be (sha256 and, if known, size)."""
    name: str
    file: str
    urls: Tuple[str, ...]
    sha256: Optional[str] = None
    size: Optional[int] = None
    sha1: Optional[str] = None  # where a data set publishes only sha1 (FMA)
    md5: Optional[str] = None  # where the publisher gives only md5 (Zenodo: PANNs' weights)


def data_home(configured: Optional[str] = None) -> str:
    """Where downloads go: `configured` (config.data.home), else $JAXGENRE_DATA, else
    ~/.cache/jaxgenre."""
    home = configured or os.environ.get(ENV_HOME) or os.path.join("~", ".cache", "jaxgenre")
    return os.path.abspath(os.path.expanduser(home))


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """The file's hex digest (hashlib's own chunked reader)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def _problem(path: str, asset: Asset) -> Optional[str]:
    """Why the file at `path` is not the asset, or None when it is."""
    if asset.size is not None and os.path.getsize(path) != asset.size:
        return f"{os.path.getsize(path)} bytes, expected {asset.size}"
    if asset.sha256 and (digest := file_digest(path)) != asset.sha256.lower():
        return f"sha256 {digest}, expected {asset.sha256}"
    if asset.sha1 and (digest := file_digest(path, "sha1")) != asset.sha1.lower():
        return f"sha1 {digest}, expected {asset.sha1}"
    if asset.md5 and (digest := file_digest(path, "md5")) != asset.md5.lower():
        return f"md5 {digest}, expected {asset.md5}"
    return None


def fetch(asset: Asset, home: str, *, timeout: float = 30.0, attempts: int = 3,
          progress: bool = True, max_bytes: Optional[int] = None,
          deadline: Optional[float] = None, say: Callable[[str], None] = _say) -> str:
    """The verified asset's path under `home`, fetched from the first mirror that works;
    `max_bytes` caps an asset of unknown size, `deadline` each mirror's transfer (None:
    configs/base.py's `config.data.download`)."""
    if max_bytes is None or deadline is None:
        limits = TransferLimits.from_config()
        max_bytes = limits.max_bytes if max_bytes is None else max_bytes
        deadline = limits.deadline_seconds if deadline is None else deadline
    if (asset.file in ("", ".", "..") or "/" in asset.file or "\\" in asset.file
            or "\0" in asset.file):
        raise DownloadError(f"cannot fetch {asset.name}: {asset.file!r} is not a file name to "
                            f"save it under; give a URL or path that ends in the file's name")
    if "\0" in home:
        raise DownloadError(f"cannot fetch {asset.name} into {home!r}: a folder name has no NUL "
                            f"character; correct config.data.home / ${ENV_HOME}")
    final = os.path.join(home, asset.file)
    try:  # verified before: no lock needed (a read-only shared home works too)
        if os.path.isfile(final) and _problem(final, asset) is None:
            return final
    except OSError:  # set aside by another process meanwhile: see below, under the lock
        pass
    lock = final + ".lock"
    try:
        os.makedirs(home, exist_ok=True)
        with filelock.exclusive(lock, say=say, waiting=f"waiting for another process "
                                f"fetching {asset.name} into {home} (lock {lock})"):
            return _fetch_locked(asset, final, timeout=timeout, attempts=attempts,
                                 progress=progress, max_bytes=max_bytes, deadline=deadline,
                                 say=say)
    except OSError as e:  # the home folder itself: not writable, full, ...
        raise DownloadError(f"cannot fetch {asset.name} into {home} ({e.strerror or e}); "
                            f"check that it is writable and has room, or set "
                            f"config.data.home / ${ENV_HOME}") from None


def _fetch_locked(asset: Asset, final: str, *, say: Callable[[str], None], **transfer) -> str:
    if os.path.lexists(final) and not os.path.isfile(final):  # before fetching anything
        what = ("a folder" if os.path.isdir(final) else "a broken link"
                if os.path.islink(final) else "not a regular file")
        raise DownloadError(f"{final} is {what}, not {asset.name}: move it away (or set "
                            f"config.data.home / ${ENV_HOME} elsewhere) and run again")
    if os.path.isfile(final):
        problem = _problem(final, asset)
        if problem is None:  # fetched by the process this one waited for
            return final
        aside = _set_aside(final)
        say(f"{final} is not {asset.name} ({problem}): renamed to {aside}, not deleted; "
            f"fetching it again")
    partial = final + ".part"
    failures = []
    for url in asset.urls:
        shown = " ".join(url.split())  # one line, whatever the configured URL holds
        try:
            _fetch_one(url, partial, asset, **transfer)
        except (_Refused, urllib.error.URLError, http.client.HTTPException, ValueError,
                OSError) as e:
            failures.append(f"{shown}: {_reason(e)}")
            continue
        problem = _problem(partial, asset)
        if problem:
            os.remove(partial)
            failures.append(f"{shown}: wrong file ({problem})")
            continue
        try:
            os.replace(partial, final)
        except OSError as e:  # the final path taken meanwhile: keep the verified copy
            raise DownloadError(f"cannot put {asset.name} at {final} ({e.strerror or e}); the "
                                f"verified download is kept at {partial}: move it there by "
                                f"hand") from None
        return final
    tried = "; ".join(failures) or "no URL configured"
    digest = (f" (sha256 {asset.sha256})" if asset.sha256
              else f" (sha1 {asset.sha1})" if asset.sha1
              else f" (md5 {asset.md5})" if asset.md5 else "")
    raise DownloadError(f"could not fetch {asset.name}: {tried}. Download it by hand and put "
                        f"it at {final}{digest}, or give a URL or path that works")


def _set_aside(path: str) -> str:
    """Renames `path` to the first free `<path>.mismatch[.N]`; returns the new name."""
    aside, n = path + ".mismatch", 0
    while os.path.lexists(aside):
        n += 1
        aside = f"{path}.mismatch.{n}"
    os.rename(path, aside)
    return aside


def _reason(error: BaseException) -> str:
    """Why one mirror failed, in one line (urllib's own texts may have several)."""
    return " ".join(_reason_text(error).split())


def _reason_text(error: BaseException) -> str:
    if isinstance(error, _Refused):
        return str(error)
    if isinstance(error, urllib.error.HTTPError):
        if str(error.reason).startswith(urllib.request.HTTPRedirectHandler.inf_msg):
            handler = urllib.request.HTTPRedirectHandler
            return (f"redirect loop (HTTP {error.code}: more than {handler.max_redirections} "
                    f"redirects, or one URL {handler.max_repeats} times); the server is "
                    f"misconfigured, try another mirror")
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, http_transfer.RedirectRefused):
        return str(error.reason)
    if isinstance(error, urllib.error.URLError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "no answer (timed out)"
    return f"{type(error).__name__}: {error}"


def _local_path(url: str) -> Optional[str]:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return urllib.request.url2pathname(parsed.path)
    if parsed.scheme in ("", ) or (len(parsed.scheme) == 1 and os.name == "nt"):
        return os.path.expanduser(url)
    return None


def _fetch_one(url: str, partial: str, asset: Asset, *, timeout: float, attempts: int,
               progress: bool, max_bytes: int, deadline: float) -> None:
    cap = (asset.size, f"the asset's {asset.size} bytes") if asset.size is not None else (
        max_bytes, f"{max_bytes} bytes ({KEY}.max_bytes)")
    local = _local_path(url)
    if local is not None:
        if not os.path.isfile(local):
            raise FileNotFoundError(f"no file at {local}")
        if os.path.getsize(local) > cap[0]:
            raise _Refused(f"{os.path.getsize(local)} bytes, more than {cap[1]}")
        shutil.copyfile(local, partial)
        return
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme in {url!r}")
    due = time.monotonic() + deadline
    try:
        for attempt in range(attempts):
            try:
                http_transfer.get(url, partial, name=asset.file, size=asset.size,
                                  timeout=timeout, progress=progress, cap=cap,
                                  due=(due, deadline))
                return
            except (http.client.IncompleteRead, ConnectionError) as e:
                if attempt + 1 == attempts:  # keep the partial file: a later run resumes it
                    raise ConnectionError(f"connection lost {attempts} times, last: {e}") from None
    except _Refused as e:
        if "more than" in str(e) and os.path.isfile(partial):
            os.remove(partial)  # not the asset: nothing to resume
        raise
