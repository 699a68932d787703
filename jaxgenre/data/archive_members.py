"""What one archive member may be, and how it is written: the checks and the
streaming copy behind `archive.extract`, for zip and tar alike.

A member lands only below the staging folder: no absolute name, no '..', no NUL; every
name fits the file system (NAME_MAX per component, PATH_MAX in all) and is at most
`MAX_DEPTH` (64) names deep (GTZAN's and FMA's are 2-3; a deeper one is refused by name
before any folder is made); a name is one thing (a folder, a file or a link), and
nothing is written under a file or a link. A link needs a name: one named '.' would
stand for the staging folder itself.
Links are recorded and made last, after every file, so no write ever passes through
one; a link's target may not be absolute or hold '..', so it points down its own
folder. Bytes are counted as written (a zip's declared sizes can lie) against the
archive's `Limits`. Every name made counts as a member, files, links and folders, the
folders a deep name only implies too, and each folder counts `FOLDER_BYTES` (one
directory block) against the byte and ratio caps: 200 empty files 900 folders deep
once made 180,201 folders from 3.9 KB under a cap of 200 members and 1 MB. Every
failure is one `ArchiveError` line naming archive and member.
"""

from __future__ import annotations

import lzma
import os
import re
import tarfile
import zipfile
import zlib
from typing import Dict, Optional, Tuple

from jaxgenre.errors import UserError

CHUNK = 1 << 20
RATIO_FLOOR = 1 << 20  # below 1 MiB unpacked no ratio counts: tiny files compress well
KEY = "config.data.archive"
MAX_DEPTH = 64  # names in one member's path, folders and its own
FOLDER_BYTES = 4096  # what a folder costs against the caps: one directory block
# What reading a damaged archive raises, from tarfile, zipfile and their decompressors.
READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError,
               OSError, RuntimeError, NotImplementedError)


class ArchiveError(UserError):
    """An archive that cannot be unpacked: not an archive, damaged, over a limit, or
    holding a member this file system cannot take."""


class UnsafeArchive(ArchiveError):
    """An archive with a member that would land outside the folder it is unpacked into."""


def shown(name: str, limit: int = 80) -> str:
    """A member name fit for a one-line message: control characters escaped, long
    names cut in the middle."""
    name = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return name if len(name) <= limit else f"{name[:limit // 2]}...{name[-limit // 2:]}"


class Unpacker:
    """The state of one extraction into `staging`: what each name is, bytes so far."""

    def __init__(self, archive: str, staging: str, limits):
        self.archive, self.staging, self.limits = archive, staging, limits
        self.kinds: Dict[str, str] = {}  # 'a/b' -> folder | file | link
        self.links: Dict[str, Tuple[Tuple[str, ...], str]] = {}
        self.total = 0
        self.ratio_cap = max(limits.max_ratio * os.path.getsize(archive), RATIO_FLOOR)
        self.name_max = os.pathconf(staging, "PC_NAME_MAX")
        self.path_max = os.pathconf(staging, "PC_PATH_MAX")

    def fail(self, text: str, unsafe: bool = False) -> ArchiveError:
        return (UnsafeArchive if unsafe else ArchiveError)(
            f"'{self.archive}' {text}; refused, nothing unpacked")

    def damaged(self, where: str, error: BaseException) -> ArchiveError:
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:200]
        return ArchiveError(f"'{self.archive}' is damaged or cut short {where} ({reason}); "
                            f"delete it and fetch it again")

    def parts(self, name: str, what: str = "member") -> Tuple[str, ...]:
        """`name`'s path components, checked to stay inside and to fit the file system."""
        if "\x00" in name:
            raise self.fail(f"has a {what} '{shown(name)}' whose name holds a NUL byte",
                            unsafe=True)
        pieces = re.split(r"[\\/]", name)
        if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in pieces:
            raise self.fail(f"has a {what} '{shown(name)}' that would land outside the folder "
                            f"it is unpacked into", unsafe=True)
        parts = tuple(p for p in pieces if p not in ("", "."))
        if len(parts) > MAX_DEPTH:
            raise self.fail(f"has a {what} '{shown(name)}' {len(parts)} levels deep; at most "
                            f"{MAX_DEPTH} are unpacked")
        for part in parts:
            if len(os.fsencode(part)) > self.name_max:
                raise self.fail(f"has a {what} '{shown(name)}' with a name of "
                                f"{len(os.fsencode(part))} bytes; this file system holds at "
                                f"most {self.name_max} bytes per name")
        if len(os.fsencode(os.path.join(self.staging, *parts))) >= self.path_max:
            raise self.fail(f"has a {what} '{shown(name)}' whose path is longer than this "
                            f"file system's {self.path_max} bytes")
        return parts

    def claim(self, parts: Tuple[str, ...], kind: str, name: str) -> str:
        """Records `parts` as `kind`; refuses a member under a link or a file, or one that
        is a folder and a file (or link) at once. Returns its path in the staging folder."""
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            have = self.kinds.get(prefix) or self._new(prefix, "folder", name)
            if have == "link":
                raise self.fail(f"has a member '{shown(name)}' under the link "
                                f"'{shown(prefix)}' (nothing is written through a link)",
                                unsafe=True)
            if have == "file":
                raise self.fail(f"has a member '{shown(name)}' that needs a folder "
                                f"'{shown(prefix)}', but '{shown(prefix)}' is a file in it")
        key = "/".join(parts)
        have = self.kinds.get(key) or self._new(key, kind, name)
        if have != kind:
            raise self.fail(f"has a member '{shown(name)}' that is both a {have} and a {kind}")
        return os.path.join(self.staging, *parts)

    def _new(self, key: str, kind: str, name: str) -> str:
        """Records the new name `key` (made for member `name`) against the caps."""
        self.kinds[key] = kind
        if len(self.kinds) > self.limits.max_members:
            raise self.fail(f"has more than {self.limits.max_members} members "
                            f"({KEY}.max_members) at member '{shown(name)}', counting every "
                            f"file, link and folder, those its names imply too")
        if kind == "folder":
            self.add_bytes(FOLDER_BYTES, name)
        return kind

    def count(self, n: int) -> None:
        if n > self.limits.max_members:
            raise self.fail(f"has more than {self.limits.max_members} members "
                            f"({KEY}.max_members)")

    def add_bytes(self, n: int, name: str) -> None:
        """Counts `n` more bytes of member `name` against the archive's caps."""
        self.total += n
        if self.total > self.limits.max_bytes:
            raise self.fail(f"unpacks to more than {self.limits.max_bytes} bytes "
                            f"({KEY}.max_bytes) at member '{shown(name)}'")
        if self.total > self.ratio_cap:
            raise self.fail(f"unpacks to more than {self.limits.max_ratio:g} times its own size "
                            f"({KEY}.max_ratio) at member '{shown(name)}'")

    def folder(self, name: str) -> None:
        parts = self.parts(name)
        if parts:
            self.makedirs(self.claim(parts, "folder", name), name)

    def makedirs(self, path: str, name: str) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise self.fail(f"member '{shown(name)}' cannot be written ({e.strerror})") from None

    def file(self, name: str, source, packed: Optional[int] = None) -> int:
        """Streams `source` (a file object) into member `name`; the bytes written."""
        parts = self.parts(name)
        if not parts:
            raise self.fail(f"has a file member '{shown(name)}' with no name")
        path = self.claim(parts, "file", name)
        self.makedirs(os.path.dirname(path), name)
        cap = None if packed is None else max(self.limits.max_ratio * packed, RATIO_FLOOR)
        written = 0
        try:
            if os.path.lexists(path):  # a later copy of the same name replaces the first
                os.unlink(path)
            out = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                    0o666), "wb")
        except OSError as e:
            raise self.fail(f"member '{shown(name)}' cannot be written ({e.strerror})") from None
        with out:
            while True:
                try:
                    block = source.read(CHUNK)
                except READ_ERRORS as e:
                    raise self.damaged(f"in member '{shown(name)}'", e) from None
                if not block:
                    return written
                written += len(block)
                if cap is not None and written > cap:
                    raise self.fail(f"has a member '{shown(name)}' that unpacks to more than "
                                    f"{self.limits.max_ratio:g} times its packed size "
                                    f"({KEY}.max_ratio)")
                self.add_bytes(len(block), name)
                try:
                    out.write(block)
                except OSError as e:
                    raise self.fail(f"member '{shown(name)}' cannot be written "
                                    f"({e.strerror})") from None

    def linked(self, name: str, what: str) -> Tuple[str, ...]:
        """A link member's path components; it needs a name ('.' is the folder itself)."""
        parts = self.parts(name)
        if not parts:
            raise self.fail(f"has a {what} '{shown(name)}' with no name (it would stand for "
                            f"the folder it is unpacked into)")
        return parts

    def hardlink(self, name: str, target: str) -> None:
        parts = self.linked(name, "hard link")
        source = "/".join(self.parts(target, "hard link target"))
        if self.kinds.get(source) != "file":
            raise self.fail(f"has a hard link '{shown(name)}' to '{shown(target)}', which is "
                            f"not a file before it in the archive")
        path = self.claim(parts, "file", name)
        try:
            if os.path.lexists(path):
                os.unlink(path)
            os.link(os.path.join(self.staging, *source.split("/")), path)
        except OSError as e:
            raise self.fail(f"member '{shown(name)}' cannot be written ({e.strerror})") from None

    def symlink(self, name: str, target: str) -> None:
        """Records a link (made at the end, so nothing is ever written through one). Its
        target may not be absolute or hold '..': it can only point down its own folder."""
        parts = self.linked(name, "link")
        if not target:
            raise self.fail(f"has a link '{shown(name)}' with no target")
        self.parts(target, "link target")
        self.claim(parts, "link", name)
        self.links["/".join(parts)] = (parts, target)

    def make_links(self) -> None:
        for parts, target in self.links.values():
            path = os.path.join(self.staging, *parts)
            self.makedirs(os.path.dirname(path), "/".join(parts))
            try:
                os.symlink(target, path)
            except OSError as e:
                raise self.fail(f"link '{shown('/'.join(parts))}' cannot be made "
                                f"({e.strerror})") from None
