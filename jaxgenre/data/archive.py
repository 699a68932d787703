"""Every archive jaxgenre unpacks goes through `extract` (fetched GTZAN and FMA, and
`python -m jaxgenre.data.tfds_gtzan --from=ARCHIVE`), which treats it as hostile.

- The type comes from the file's own first bytes (zip `PK\\3\\4`/`PK\\5\\6`; gzip, bzip2
  or xz around a tar; a plain tar's `ustar` at offset 257), not from its name and not
  from `zipfile.is_zipfile`, which also says yes to a tar whose last member is a zip.
- Members are unpacked one by one, as a stream, into a folder beside the target that is
  renamed to it only when complete. A member that would land outside (absolute, `..`,
  a link pointing out or up), a member under a link (nothing is written through a link,
  so a link cycle or a link to `/` leads nowhere), a name the file system cannot hold, a
  name that is both a file and a folder, a special file, or a damaged or cut-short
  archive ends in one `ArchiveError` line naming the archive and the member; nothing is
  left behind. tarfile's own `data_filter` checks each tar member too.
- A tar is read through `tar_stream.TarStream`: decompressed by Python's gzip/bz2/lzma
  readers to the stream's very end (end marker and CRC checked), every header walked
  and checked before tarfile sees it (an extended header over 1 MiB, a bad checksum, a
  missing end-of-archive block are refused), and tarfile fed only what it should read.
- `Limits` caps the bytes actually written (not the sizes the archive declares, which
  can lie), the member count and the compression ratio (per member for zip, and for the
  archive as a whole, the tar stream itself included); every name made counts as a
  member, the folders a deep name implies too, and each folder as 4096 bytes
  (`archive_members`); `config.data.archive` sets them, and the defaults are sized for
  FMA-large (~93 GiB of mp3 in ~106.6k files). Below `RATIO_FLOOR` no ratio counts: tiny
  files compress well.
- Files and folders get the umask's modes (the members' own modes, owners and times are
  not applied), so a shared data home stays readable to its group.
- One process at a time per target (`filelock`): a second waits, then finds the folder.

`archive_members` holds the checks on each member and the streaming copy.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import sys
import tarfile
import zipfile
from typing import Callable, Optional

from jaxgenre.data import filelock, tar_stream
from jaxgenre.data.archive_members import (KEY, RATIO_FLOOR, READ_ERRORS,  # noqa: F401
                                           ArchiveError, UnsafeArchive, Unpacker, shown)
from jaxgenre.data.tar_stream import TarStream

_DATA_FILTER = getattr(tarfile, "data_filter", None)  # Python >= 3.11.4


@dataclasses.dataclass(frozen=True)
class Limits:
    """Caps on one archive: bytes written, members, unpacked/packed size ratio."""
    max_bytes: int
    max_members: int
    max_ratio: float

    @classmethod
    def from_config(cls, data=None) -> "Limits":
        """From `config.data.archive` (`data` is `config.data`; None: configs/base.py's)."""
        return from_section(cls, data, "archive")


def from_section(cls, data, name: str):
    """The dataclass `cls` from `config.data.<name>` (`data` is `config.data`, or None
    for configs/base.py's: the one home of these caps) — `Limits`,
    `download.TransferLimits`."""
    if data is None:
        from configs import base

        data = base.get_config().data
    return cls(**{f.name: data[name][f.name] for f in dataclasses.fields(cls)})


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def archive_kind(path: str) -> str:
    """'zip', 'tar', 'tar.gz', 'tar.bz2' or 'tar.xz', from the file's first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as e:
        raise ArchiveError(f"cannot read '{path}' ({e.strerror or e})") from None
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    for magic, kind in ((b"\x1f\x8b", "tar.gz"), (b"BZh", "tar.bz2"),
                        (b"\xfd7zXZ\x00", "tar.xz")):
        if head.startswith(magic):
            return kind
    if head[257:262] == b"ustar":
        return "tar"
    raise ArchiveError(f"'{path}' is neither a zip nor a tar archive (nor a gzip, bzip2 or xz "
                       f"one) by its first bytes; delete it and fetch it again")


def _unpack_zip(u: Unpacker) -> int:
    """Unpacks the zip member by member; returns how many members it has."""
    try:
        archive = zipfile.ZipFile(u.archive)
    except READ_ERRORS as e:
        raise u.damaged("(its table of contents)", e) from None
    with archive:
        members = archive.infolist()
        if len(members) > u.limits.max_members:
            raise u.fail(f"has {len(members)} members, more than {u.limits.max_members} "
                         f"({KEY}.max_members)")
        for info in members:
            if info.is_dir():
                u.folder(info.filename)
                continue
            u.parts(info.filename)  # checked before the member is even opened
            try:
                source = archive.open(info)
            except READ_ERRORS as e:
                raise u.damaged(f"at member '{shown(info.filename)}'", e) from None
            with source:
                u.file(info.filename, source, packed=info.compress_size)
    return len(members)


def _unpack_tar(u: Unpacker, compression: str) -> int:
    """Unpacks the tar as a stream, member by member; returns how many members it has.
    tarfile reads it through `TarStream`, which walks and checks every header first."""
    try:
        raw = tar_stream.open_decompressed(u.archive, compression)
    except OSError as e:
        raise u.damaged("at its start", e) from None
    with raw:
        stream = TarStream(raw, u)
        try:
            tar = tarfile.open(fileobj=stream, mode="r|", bufsize=tar_stream.BUFSIZE)
        except READ_ERRORS as e:
            raise u.damaged("at its start (or it is not a tar inside)", e) from None
        with tar:
            count = 0
            while True:
                stream.expect_header()
                try:
                    member = tar.next()
                except READ_ERRORS as e:
                    raise stream.damaged(e) from None
                if member is None:
                    stream.finish()
                    return count
                stream.take(member)
                tar.members.clear()  # tarfile keeps every header it read; nothing needs them
                count += 1
                u.count(count)
                _unpack_member(u, tar, member)


def _unpack_member(u: Unpacker, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    """One tar member: its names checked first (a NUL, '..', depth), then tarfile's own
    data filter, then written (a link only recorded)."""
    name = member.name
    u.parts(name)
    if member.issym():
        u.symlink(name, member.linkname)
    elif member.islnk():
        u.hardlink(name, member.linkname)
    elif not (member.isfile() or member.isdir()):
        raise u.fail(f"has a special file '{shown(name)}' (device or fifo)", unsafe=True)
    if _DATA_FILTER is not None:
        try:
            _DATA_FILTER(member, u.staging)
        except tarfile.FilterError as e:
            raise u.fail(f"has a member '{shown(name)}' that tarfile's data filter "
                         f"refuses ({e})", unsafe=True) from None
        except (ValueError, OSError) as e:
            raise u.fail(f"has a member '{shown(name)}' that tarfile's data filter cannot "
                         f"check ({e})", unsafe=True) from None
    if member.isdir():
        u.folder(name)
    elif member.isfile():
        if u.total + member.size > u.limits.max_bytes:  # declared: fail early
            u.add_bytes(member.size, name)
        written = u.file(name, tar.extractfile(member))
        if written != member.size:
            raise u.damaged(f"in member '{shown(name)}'", EOFError(
                f"{written} of its {member.size} bytes"))


def extract(archive: str, target: str, *, limits: Optional[Limits] = None,
            say: Callable[[str], None] = _say) -> str:
    """Unpacks `archive` into the folder `target` (see the module docstring) and returns
    `target`; an existing `target` is kept as it is (unpacked before: only a complete
    folder is ever renamed to it)."""
    target = os.path.abspath(target)
    if os.path.isdir(target):
        return target
    limits = limits or Limits.from_config()
    parent = os.path.dirname(target)
    lock = target + ".lock"
    try:
        os.makedirs(parent, exist_ok=True)
        with filelock.exclusive(lock, say=say, waiting=f"waiting for another process "
                                f"unpacking '{archive}' into {target} (lock {lock})"):
            if os.path.isdir(target):  # the other process finished it
                return target
            kind = archive_kind(archive)
            staging = _staging_folder(parent)
            try:
                unpacker = Unpacker(archive, staging, limits)
                count = (_unpack_zip(unpacker) if kind == "zip"
                         else _unpack_tar(unpacker, kind[4:]))
                if not count:
                    raise unpacker.fail("holds no members: an empty archive, or not the "
                                        "archive its first bytes say")
                unpacker.make_links()
                os.rename(staging, target)
            finally:
                if os.path.isdir(staging):
                    shutil.rmtree(staging)
    except OSError as e:  # the target's folder: not writable, full, ...
        raise ArchiveError(f"cannot unpack '{archive}' into {target} ({e.strerror or e}); "
                           f"check that {parent} is writable and has room") from None
    return target


def _staging_folder(parent: str) -> str:
    """A new folder in `parent` with the umask's mode (mkdtemp's would be 0700)."""
    while True:
        path = os.path.join(parent, f".unpacking-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
