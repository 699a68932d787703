"""Files fetched and verified: one module every source and the ImageNet weights share.

    path = fetch(Asset(name="GTZAN genres.tar.gz", file="genres.tar.gz",
                       urls=(URL_1, URL_2), sha256=DIGEST), home=data_home())

- Mirrors are tried in order; each may be an http(s) URL, a `file://` URL or a plain
  path (a copy the user already has, or an internal mirror).
- HTTP downloads stream to `<file>.part` with a progress bar (bytes, rate, ETA) and
  resume after an interruption with a Range request; a server that ignores Range (200
  instead of 206) is read again from the start. A connection that stays silent for
  `timeout` seconds is an error, not a hang.
- The finished file is verified (size, sha256) before it is renamed to its final name,
  so a half-written or wrong file never sits there. A verified file is not fetched again
  (no request is made).
- Every mirror failing raises `DownloadError` (a `UserError`) naming the asset, each URL
  with why it failed, and where to put the file by hand.

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
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional, Tuple

from tqdm import tqdm

from jaxgenre.errors import UserError

CHUNK = 1 << 20
ENV_HOME = "JAXGENRE_DATA"


class DownloadError(UserError):
    """No mirror gave a verified copy of an asset."""


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
    return None


def fetch(asset: Asset, home: str, *, timeout: float = 30.0, attempts: int = 3,
          progress: bool = True) -> str:
    """The verified asset's path under `home`, fetched from the first mirror that works."""
    os.makedirs(home, exist_ok=True)
    final = os.path.join(home, asset.file)
    if os.path.isfile(final):
        if _problem(final, asset) is None:
            return final
        os.remove(final)  # not what the pin says (an older or damaged copy): fetch again
    partial = final + ".part"
    failures = []
    for url in asset.urls:
        try:
            _fetch_one(url, partial, asset, timeout=timeout, attempts=attempts,
                       progress=progress)
        except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as e:
            failures.append(f"{url}: {_reason(e)}")
            continue
        problem = _problem(partial, asset)
        if problem:
            os.remove(partial)
            failures.append(f"{url}: wrong file ({problem})")
            continue
        os.replace(partial, final)
        return final
    tried = "; ".join(failures) or "no URL configured"
    digest = (f" (sha256 {asset.sha256})" if asset.sha256
              else f" (sha1 {asset.sha1})" if asset.sha1 else "")
    raise DownloadError(f"could not fetch {asset.name}: {tried}. Download it by hand and put "
                        f"it at {final}{digest}, or give a URL or path that works")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
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
               progress: bool) -> None:
    local = _local_path(url)
    if local is not None:
        if not os.path.isfile(local):
            raise FileNotFoundError(f"no file at {local}")
        shutil.copyfile(local, partial)
        return
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme in {url!r}")
    for attempt in range(attempts):
        try:
            _http(url, partial, asset, timeout=timeout, progress=progress)
            return
        except (http.client.IncompleteRead, ConnectionError) as e:
            if attempt + 1 == attempts:  # keep the partial file: a later run resumes it
                raise ConnectionError(f"connection lost {attempts} times, last: {e}") from None


def _http(url: str, partial: str, asset: Asset, *, timeout: float, progress: bool) -> None:
    have = os.path.getsize(partial) if os.path.isfile(partial) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "jaxgenre"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the partial file is already whole (or too long)
            if asset.size is None or have == asset.size:
                return
            os.remove(partial)
            return _http(url, partial, asset, timeout=timeout, progress=progress)
        raise
    with response:
        resumed = have and response.status == 206
        if not resumed:
            have = 0  # a server that ignores Range sends everything: start again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else asset.size
        with open(partial, "ab" if resumed else "wb") as out, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=asset.file, disable=not progress, leave=False) as bar:
            received = 0
            while block := response.read(CHUNK):
                out.write(block)
                received += len(block)
                bar.update(len(block))
        if length is not None and received < int(length):
            raise http.client.IncompleteRead(b"", int(length) - received)


class UnsafeArchive(UserError):
    """An archive with a member that would land outside the folder it is unpacked into."""


def _check_member(archive: str, name: str, link: Optional[str] = None) -> None:
    """Refuses absolute names, '..' components, and links that point outside."""
    for value, what in ((name, "member"), (link, "link target")):
        if value is None:
            continue
        parts = value.replace("\\", "/").split("/")
        if value.startswith(("/", "\\")) or os.path.isabs(value) or ".." in parts:
            raise UnsafeArchive(f"'{archive}' has a {what} '{value}' that would land outside "
                                f"the folder it is unpacked into; refused, nothing unpacked")
    if link is not None:  # a relative link: resolve it against its own folder
        inside = os.path.normpath(os.path.join(os.path.dirname(name), link))
        if inside.startswith(".."):
            raise UnsafeArchive(f"'{archive}' has a link '{name}' -> '{link}' pointing "
                                f"outside the folder it is unpacked into; refused")


def extract(archive: str, target: str) -> str:
    """Unpacks a .tar(.gz|.bz2|.xz) or .zip archive into `target`, via a temporary
    folder beside it that is renamed when complete; every member is checked first
    (`UnsafeArchive`). An existing `target` is kept as it is (already unpacked)."""
    import tarfile
    import tempfile
    import zipfile

    if os.path.isdir(target):
        return target
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".unpacking-", dir=parent)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    _check_member(archive, info.filename)
                z.extractall(staging)
        else:
            try:
                tar = tarfile.open(archive)
            except tarfile.TarError as e:
                raise UserError(f"'{archive}' is neither a zip nor a tar archive ({e}); "
                                f"delete it and fetch it again") from None
            with tar:
                for member in tar.getmembers():
                    link = member.linkname if (member.issym() or member.islnk()) else None
                    _check_member(archive, member.name, link)
                    if not (member.isfile() or member.isdir() or link is not None):
                        raise UnsafeArchive(f"'{archive}' has a special file '{member.name}' "
                                            f"(device or fifo); refused")
                tar.extractall(staging, filter="data")  # the library's own check, too
        os.replace(staging, target)
    finally:
        if os.path.isdir(staging):
            shutil.rmtree(staging)
    return target
