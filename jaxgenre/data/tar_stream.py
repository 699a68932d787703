"""The tar stream as `archive._unpack_tar` hands it to tarfile: decompressed by Python's
own gzip/bz2/lzma readers, and walked here, header by header, before tarfile may read
a byte of it.

Why: tarfile reads a pax or GNU long-name header whole into memory (a 300 KB .tar.gz
declaring a 300 MiB pax header peaked at 920 MB, a GNU long name at 3 GB); it takes a
bad checksum or a header cut short for the end of the archive (a tar cut after its
first member passed as whole); and its own gzip reader never checks the CRC. So:

- The decompressed stream is read to its very end: a missing end of stream, a wrong
  CRC or trailing garbage is damage (gzip, bzip2 and xz each check their own).
- Every header is parsed here with tarfile's own `TarInfo.frombuf`, and the walk from
  one header to the next is tarfile's (a pax `size` moves the next header; only regular
  and unknown types have data blocks). A bad checksum, a header or data cut short, or
  no end-of-archive block is damage, named by the member after which it came.
- An extended header (pax 'x'/'X'/'g', GNU 'L'/'K') may declare at most `EXT_MAX` bytes,
  is refused before it is read, and a member may have at most one of each. What would
  move tarfile's walk in ways not followed here is refused: sparse members (their extra
  header blocks are unbounded too), any `GNU.sparse.*` record, a global `size`, a pax
  `size` that is not a plain number, and pax records that do not tile their header
  exactly (tarfile would parse a record hidden in the padding).
- tarfile is handed only the bytes of the header chain or the data it should be reading,
  plus one read-ahead buffer (`BUFSIZE`); were its walk ever to part from this one, it
  is stopped with an error rather than fed the rest of the archive.
- The whole stream (headers, padding, data and what follows the end block) counts
  against the ratio cap, plus `MEMBER_OVERHEAD` per member, so neither trailing zeros
  nor bulky pax headers can make it decompress without bound.
"""

from __future__ import annotations

import bz2
import collections
import dataclasses
import gzip
import lzma
import re
import tarfile
from typing import BinaryIO, Optional, Tuple

from jaxgenre.data.archive_members import CHUNK, KEY, READ_ERRORS, ArchiveError, shown

BLOCK = tarfile.BLOCKSIZE
EXT_MAX = 1 << 20  # the most bytes one extended header may declare
BUFSIZE = 1 << 16  # tarfile's read size (`tarfile.open(..., bufsize=BUFSIZE)`)
MEMBER_OVERHEAD = 4096  # stream bytes per member beyond the ratio cap: headers, padding
EXTENDED = {tarfile.XHDTYPE: "pax", tarfile.SOLARIS_XHDTYPE: "pax",
            tarfile.XGLTYPE: "global pax", tarfile.GNUTYPE_LONGNAME: "GNU long-name",
            tarfile.GNUTYPE_LONGLINK: "GNU long-link"}
_RECORD = re.compile(rb"([0-9]{1,20}) ([^=]+)=")


def open_decompressed(path: str, compression: str) -> BinaryIO:
    """`path` as its decompressed byte stream ('' for a plain tar)."""
    opener = {"": open, "gz": gzip.open, "bz2": bz2.open, "xz": lzma.open}[compression]
    return opener(path, "rb")


def _block(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


@dataclasses.dataclass(frozen=True)
class Entry:
    """One member as the walk found it: where its data starts, its size and type, where
    its header chain starts and where the next header starts."""
    offset_data: int
    size: int
    type: bytes
    start: int
    end: int


class TarStream:
    """A file object for `tarfile.open(fileobj=..., mode='r|', bufsize=BUFSIZE)` over
    `raw`, the decompressed stream; `u` is the `Unpacker` (caps and messages). The
    caller says what tarfile is about to read: `expect_header()` before `tar.next()`,
    `take(member)` after it, `finish()` when it returned None."""

    def __init__(self, raw: BinaryIO, u):
        self.raw, self.u = raw, u
        self.pos = 0  # bytes handed to tarfile; `pending` holds those read beyond
        self.pending = b""
        self.read_total = 0
        self.next_header = 0
        self.entries: collections.deque = collections.deque()  # walked, not yet taken
        self.members = 0
        self.end_at: Optional[int] = None
        self.current: Optional[Entry] = None  # the member whose data tarfile reads
        self.walked: Optional[str] = None  # the name of the last member walked

    # ------------------------------------------------------------------ messages
    def _where(self, exact: bool = True) -> str:
        """Where the stream stands: in or after the last member walked (`exact`: the
        walk's own finding; a decompressor's error comes from a read ahead)."""
        if self.walked is None:
            return "at its first member"
        inside = self.read_total < self.next_header
        place = ("in" if inside else "after") if exact else "at"
        return f"{place} member '{shown(self.walked)}'"

    def damaged(self, why) -> ArchiveError:
        """Damage at the walk's place: `why` an exception or the walk's own words."""
        if isinstance(why, BaseException):
            return self.u.damaged(self._where(exact=False), why)
        return ArchiveError(f"'{self.u.archive}' is damaged or cut short {self._where()} "
                            f"({why}); delete it and fetch it again")

    # ------------------------------------------------------------- the caller's side
    def expect_header(self) -> None:
        self.current = None

    def take(self, member: tarfile.TarInfo) -> None:
        """tarfile's `member` must be the next one walked here, at the same place."""
        entry = self.entries.popleft() if self.entries else None
        if entry is None or (member.offset_data, member.size, member.type) != (
                entry.offset_data, entry.size, entry.type):
            raise self.damaged(f"tarfile reads member '{shown(member.name)}' elsewhere "
                               f"than its headers say")
        self.current = entry

    def finish(self) -> None:
        """tarfile found the end: it must be the end block, and the stream must end
        cleanly (every decompressor checks its own end and CRC here)."""
        if self.end_at is None or self.entries:
            raise self.damaged("tarfile stops before the end-of-archive block")
        self.pending = b""
        while True:
            block = self._raw_read(CHUNK)
            if not block:
                return

    # ------------------------------------------------------------- tarfile's side
    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > BUFSIZE:
            n = BUFSIZE  # tarfile reads BUFSIZE at a time; a short read is fine
        stop = self.pos + n
        while self.end_at is None and self.next_header < stop:
            self._walk_chain()  # every header is checked before tarfile sees it
        stop = min(stop, self._limit())
        if stop <= self.pos:
            if n == 0:
                return b""
            raise self.damaged("tarfile reads past the header or data it is at")
        want = stop - self.pos
        if not self.pending:
            block = self._raw_read(want)
            if not block and self.end_at is None:
                raise self.damaged("the archive ends before its end-of-archive block")
        else:
            block, self.pending = self.pending[:want], self.pending[want:]
        self.pos += len(block)
        return block

    def _limit(self) -> int:
        if self.current is not None:  # reading a member's data
            return self.current.end + BUFSIZE
        if self.entries:  # reading the next member's header chain
            head = self.entries[0]
            return head.offset_data + BUFSIZE
        if self.end_at is not None:
            return self.end_at + BLOCK + BUFSIZE
        return self.next_header

    # ---------------------------------------------------------------------- walk
    def _raw_read(self, n: int) -> bytes:
        try:
            block = self.raw.read(n)
        except READ_ERRORS as e:
            raise self.damaged(e) from None
        self.read_total += len(block)
        if self.read_total > self.u.ratio_cap + MEMBER_OVERHEAD * self.members:
            raise self.u.fail(f"unpacks to more than {self.u.limits.max_ratio:g} times its "
                              f"own size ({KEY}.max_ratio) in its tar stream, {self._where()}")
        return block

    def _peek(self, at: int, n: int) -> bytes:
        """Bytes [at, at + n) of the stream (at >= pos), read ahead into `pending`."""
        need = at + n - self.pos
        parts = [self.pending]
        have = len(self.pending)
        while have < need:
            block = self._raw_read(need - have)
            if not block:
                break
            parts.append(block)
            have += len(block)
        self.pending = b"".join(parts)
        return self.pending[at - self.pos:need]

    def _walk_chain(self) -> None:
        """Walks the header chain at `next_header` (extended headers, then the member's
        own) as tarfile will, or finds the end-of-archive block there."""
        start = at = self.next_header
        seen, size, name = set(), None, None
        while True:
            block = self._peek(at, BLOCK)
            if len(block) < BLOCK:
                raise self.damaged("the archive ends before its end-of-archive block")
            try:
                info = tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
            except tarfile.EOFHeaderError:
                if seen:
                    raise self.damaged("an extended header is followed by no member") from None
                self.end_at = at
                return
            except tarfile.HeaderError as e:
                raise self.damaged(f"its header at byte {at}: {e}") from None
            at += BLOCK
            if info.size < 0:
                raise self.damaged(f"its header at byte {at - BLOCK} declares a negative size")
            kind = EXTENDED.get(info.type)
            if kind is None:
                break
            if kind in seen:
                raise self.damaged(f"two {kind} headers before one member")
            seen.add(kind)
            if info.size > EXT_MAX:
                raise self.u.fail(f"has a {kind} header of {info.size} bytes {self._where()}; "
                                  f"at most {EXT_MAX} are read (tarfile would hold it whole "
                                  f"in memory)")
            data = self._peek(at, _block(info.size))
            if len(data) < _block(info.size):
                raise self.damaged(f"the archive ends inside a {kind} header")
            if kind in ("pax", "global pax"):
                size, path = self._pax(data, info.size, kind, size)
                name = name or (path if kind == "pax" else None)
            elif kind == "GNU long-name":
                name = name or tarfile.nts(data[:info.size], tarfile.ENCODING, "surrogateescape")
            at += _block(info.size)
        name = name or info.name
        if info.type == tarfile.GNUTYPE_SPARSE:
            raise self.u.fail(f"has a sparse member '{shown(name)}'; sparse files are not "
                              f"unpacked")
        size = info.size if size is None else size
        data = info.isreg() or info.type not in tarfile.SUPPORTED_TYPES
        entry = Entry(at, size, info.type, start, at + (_block(size) if data else 0))
        self.entries.append(entry)
        self.members += 1
        self.next_header, self.walked = entry.end, name

    def _pax(self, data: bytes, length: int, kind: str,
             size: Optional[int]) -> Tuple[Optional[int], Optional[str]]:
        """The `size` a pax header sets (else `size`) and its `path`; its records must
        tile `length` exactly, with only NULs after them, as tarfile parses what it finds."""
        pos, path = 0, None
        while pos < length:
            match = _RECORD.match(data, pos)
            end = pos + int(match.group(1)) if match else 0
            if not match or end > length or end <= match.end() or data[end - 1:end] != b"\n":
                raise self.damaged(f"a malformed {kind} header record at byte {pos} of it")
            key, value = match.group(2), data[match.end():end - 1]
            if key.startswith(b"GNU.sparse."):
                raise self.u.fail(f"has a sparse member (pax {key.decode(errors='replace')}) "
                                  f"{self._where()}; sparse files are not unpacked")
            if key == b"size":
                if kind == "global pax":
                    raise self.u.fail(f"has a global pax header that sets every member's "
                                      f"size {self._where()}")
                if not re.fullmatch(rb"[0-9]{1,20}", value):
                    raise self.damaged(f"a pax size {shown(value.decode(errors='replace'))!r} "
                                       f"that is not a number")
                size = int(value)
            if key == b"path":
                path = value.decode("utf-8", "surrogateescape")
            pos = end
        if data[length:].strip(b"\0"):
            raise self.damaged(f"a {kind} header with records in its padding")
        return size, path
