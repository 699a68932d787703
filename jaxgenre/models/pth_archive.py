"""The zip side of reading a `.pth` (`models.pth`): members read with a bound on what
they may inflate to, and a budget on every byte a file makes the reader materialise.

Why: a `.pth` is a zip, and deflate compresses zeros ~1000x, so a 500 KB file can hold a
512 MiB storage; and a zip's headers can claim a few bytes for a member that inflates to
hundreds of MiB (zipfile's `read()` inflates everything before it cuts at the claimed
size). Every member is therefore read in bounded chunks, never past its declared size,
and what a file materialises (its storages, then its tensors, stride-0 views included) is
bounded by the file's own size: `default_limit`. torch.save writes members uncompressed,
so a real checkpoint materialises about twice its size (storages, then tensors; up to
three times with tied weights), and its data.pkl is never larger than the file
(`pickle_limit`). The reader's one-line messages show a value through `short`, which
looks at a bounded part of it. The legacy reader (`pth_legacy`, no zip) holds a file to
the same `Budget`, `default_limit` and `pickle_limit`.
"""

from __future__ import annotations

import collections
import itertools
import zipfile
from typing import List

BYTES_PER_FILE_BYTE = 8  # a file may materialise 8x its own size ...
MIN_LIMIT = 16 << 20     # ... or 16 MiB, whichever is more
MAX_PICKLE_BYTES = 64 << 20  # data.pkl: ~100 bytes a tensor in real files, stored,
MIN_PICKLE_LIMIT = 1 << 20   # so never more than the file's size (or 1 MiB)
_CHUNK = 1 << 20


class Refusal(Exception):
    """Why a file is refused, without its path (`models.pth` adds the path and the fix);
    `unsafe` when the file asks for something a weights file never holds."""

    def __init__(self, message: str, unsafe: bool = False):
        super().__init__(message)
        self.unsafe = unsafe


def default_limit(file_size: int) -> int:
    """The bytes a `.pth` of `file_size` bytes may materialise."""
    return max(BYTES_PER_FILE_BYTE * file_size, MIN_LIMIT)


def pickle_limit(file_size: int, limit: int) -> int:
    """The bytes a `.pth` of `file_size` bytes, allowed to materialise `limit`, may
    inflate its data.pkl to: torch.save stores it uncompressed, so a data.pkl larger
    than the whole file is a deflated one (a few KB can hold millions of opcodes)."""
    return min(limit, MAX_PICKLE_BYTES, max(file_size, MIN_PICKLE_LIMIT))


class Budget:
    """A running count of materialised bytes against `limit` (checked before the
    allocation, so a refused file allocates nothing)."""

    def __init__(self, limit: int):
        self.limit, self.used = int(limit), 0

    def spend(self, nbytes: int, what: str) -> None:
        if self.used + nbytes > self.limit:
            raise Refusal(
                f"{what} would materialise {nbytes} bytes ({self.used} already), over the "
                f"limit of {self.limit} bytes for this file (a .pth may materialise "
                f"{BYTES_PER_FILE_BYTE}x its size, at least {MIN_LIMIT >> 20} MiB)")
        self.used += nbytes


def short(value, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters, for one-line messages, built from a
    bounded part of `value` (`_SHOWN_LEVELS` levels of `_SHOWN_ITEMS` items, strings cut
    to `limit`): a pickled value's full repr can be exponential (a list holding one list
    twice, 60 levels deep), fail (RecursionError 300,000 levels deep) or refuse (an int
    of over 4300 digits), and only its start is shown."""
    text = _bounded(value, _SHOWN_LEVELS, limit)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_SHOWN_LEVELS, _SHOWN_ITEMS = 3, 4
_BRACKETS = {list: "[]", tuple: "()", set: "{}", frozenset: "{}", dict: "{}"}


def _bounded(value, levels: int, width: int) -> str:
    if isinstance(value, (str, bytes, bytearray)):
        return repr(value[:width]) + ("..." if len(value) > width else "")
    if isinstance(value, bool) or value is None or isinstance(value, (float, complex)):
        return repr(value)
    if isinstance(value, int):
        bits = abs(value).bit_length()
        return repr(int(value)) if bits <= 256 else f"<int of {bits} bits>"
    base = next((t for t in _BRACKETS if isinstance(value, t)), None)
    if base is None:  # the reader's own objects (tensor, storage) describe themselves
        return repr(value) if type(value).__module__.startswith("jaxgenre.") \
            else f"<{type(value).__name__}>"
    opening, closing = _BRACKETS[base]
    name = type(value).__name__
    if not len(value):
        return opening + closing if type(value) in (list, tuple, dict) else f"{name}()"
    if levels <= 0:
        parts = ["..."]
    elif base is dict:
        parts = [f"{_bounded(k, levels - 1, width)}: {_bounded(v, levels - 1, width)}"
                 for k, v in itertools.islice(value.items(), _SHOWN_ITEMS)]
    else:
        parts = [_bounded(v, levels - 1, width)
                 for v in itertools.islice(value, _SHOWN_ITEMS)]
    if levels > 0 and len(value) > _SHOWN_ITEMS:
        parts.append("...")
    text = opening + ", ".join(parts) + ("," if base is tuple and len(value) == 1 else "") \
        + closing
    return text if type(value) in (list, tuple, set, dict) else f"{name}({text})"


def check_names(archive: zipfile.ZipFile) -> List[str]:
    """The archive's member names; a name held twice is refused (readers disagree on
    which copy counts)."""
    names = archive.namelist()
    twice = sorted(n for n, count in collections.Counter(names).items() if count > 1)
    if twice:
        raise Refusal(f"holds member '{twice[0]}' twice, which torch.save never writes")
    return names


def read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytearray:
    """Member `name`'s bytes: its declared size must be at most `limit`, and it is
    inflated in chunks, never past that size (a member inflating further fails zip's
    checksum there)."""
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise Refusal(f"member '{name}' would inflate to {info.file_size} bytes, over the "
                      f"limit of {limit} bytes for it")
    out, filled = bytearray(info.file_size), 0
    try:
        with archive.open(info) as f:
            while True:
                chunk = f.read(min(_CHUNK, info.file_size - filled + 1))
                if not chunk:
                    break
                if filled + len(chunk) > info.file_size:
                    raise Refusal(f"member '{name}' inflates past its declared "
                                  f"{info.file_size} bytes")
                out[filled:filled + len(chunk)] = chunk
                filled += len(chunk)
    except Refusal:
        raise
    except Exception as e:  # bad CRC, damaged deflate stream, encryption, odd method
        raise Refusal(f"member '{name}' cannot be read ({type(e).__name__}: {e})") from None
    if filled != info.file_size:
        raise Refusal(f"member '{name}' holds {filled} bytes, not its declared "
                      f"{info.file_size}")
    return out
