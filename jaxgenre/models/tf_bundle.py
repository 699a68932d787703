"""TensorFlow checkpoints (the TensorBundle format `tf.train.Saver` and `tf.train.Checkpoint`
write) read with numpy alone: no tensorflow, no protobuf classes, no code run.

Why by hand: musicnn's pretrained weights are TF-1 checkpoints, and TensorFlow is a
test-only dependency of jaxgenre (training, evaluation and predict run without it).

A checkpoint `<prefix>` is `<prefix>.index`, a table (`tf_table`) mapping each variable
name to a serialized `BundleEntryProto` (key "" holds the `BundleHeaderProto`), and the
shards `<prefix>.data-0000k-of-0000n` holding the raw little-endian tensor bytes. The
two protobufs are decoded here from the wire format (field numbers from TF's
tensor_bundle.proto):

    BundleHeaderProto  1 num_shards  2 endianness (0 little)  3 version
    BundleEntryProto   1 dtype  2 shape (TensorShapeProto: 2 dim {1 size}, 3 unknown_rank)
                       3 shard_id  4 offset  5 size  6 crc32c (fixed32, masked)  7 slices

Refused, in one line naming the file (`UnreadableBundle`): a malformed table (bounds,
block CRCs, key order), a header other than little-endian with 1..`MAX_SHARDS`
shards, a dtype outside `DTYPES` (strings, bfloat16, resources), a shape of unknown
rank or a negative dimension, a sliced (partitioned) variable, shape x itemsize not the
entry's size, bytes outside the shard, entries together claiming more bytes than
their shard holds (so overlapping entries cannot multiply memory), and bytes whose masked
CRC-32C is not the entry's.
"""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

import numpy as np

from jaxgenre.errors import UserError
from jaxgenre.models import tf_table
from jaxgenre.models.tf_table import Malformed, varint

# TF DataType enum → numpy dtype (types.proto); everything else is refused.
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
          8: np.complex64, 9: np.int64, 10: np.bool_, 17: np.uint16, 18: np.complex128,
          19: np.float16, 22: np.uint32, 23: np.uint64}
MAX_SHARDS = 10000
MAX_DIMS = 64
MAX_INDEX_BYTES = 256 * 2**20
_FIX = "not a checkpoint TensorFlow writes (damaged or crafted): use the original files"


class UnreadableBundle(UserError):
    """A TensorBundle checkpoint this reader refuses; the message names the file."""


# ------------------------------------------------------------------------ protobufs


def _fields(buf, what: str) -> List[Tuple[int, int, object]]:
    """(field number, wire type, value) of a message: an int for varint and fixed
    fields, a memoryview for length-delimited ones. Groups are refused."""
    out, pos, end = [], 0, len(buf)
    while pos < end:
        tag, pos = varint(buf, pos, end, what)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = varint(buf, pos, end, what)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if end - pos < width:
                raise Malformed(f"{what} ends inside a fixed-width field")
            value = int.from_bytes(bytes(buf[pos:pos + width]), "little")
            pos += width
        elif wire == 2:
            length, pos = varint(buf, pos, end, what)
            if length > end - pos:
                raise Malformed(f"{what} has a field of {length} bytes past its end")
            value, pos = buf[pos:pos + length], pos + length
        else:
            raise Malformed(f"{what} has wire type {wire}, which TF's protos do not use here")
        out.append((number, wire, value))
    return out


def _scalars(fields, what: str, wanted: Dict[int, int]) -> Dict[int, int]:
    """The last value of each wanted field number (protobuf's rule), checked to have
    the expected wire type (0 varint, 5 fixed32)."""
    out = {}
    for number, wire, value in fields:
        if number in wanted:
            if wire != wanted[number]:
                raise Malformed(f"{what} has field {number} of wire type {wire}")
            out[number] = value
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _shape(buf, what: str) -> Tuple[int, ...]:
    dims = []
    for number, wire, value in _fields(buf, f"{what}'s shape"):
        if number == 3 and wire == 0 and value:
            raise Malformed(f"{what} has a shape of unknown rank")
        if number == 2 and wire == 2:
            size = _signed(_scalars(_fields(value, f"{what}'s shape"), what, {1: 0}).get(1, 0))
            if size < 0:
                raise Malformed(f"{what} has a dimension of size {size}")
            dims.append(size)
            if len(dims) > MAX_DIMS:
                raise Malformed(f"{what} has more than {MAX_DIMS} dimensions")
    return tuple(dims)


class _Entry:
    """A decoded `BundleEntryProto`, its facts checked against each other."""

    def __init__(self, name: str, value) -> None:
        what = f"variable {name[:80]!r}"
        fields = _fields(value, what)
        if any(number == 7 for number, _, _ in fields):
            raise Malformed(f"{what} is saved in slices (a partitioned variable), "
                            f"which this reader does not join")
        facts = _scalars(fields, what, {1: 0, 3: 0, 4: 0, 5: 0, 6: 5})
        code = facts.get(1, 0)
        if code not in DTYPES:
            raise Malformed(f"{what} has TF dtype {code}, not one of the numeric types "
                            f"this reader accepts ({', '.join(map(str, sorted(DTYPES)))})")
        self.dtype = np.dtype(DTYPES[code]).newbyteorder("<")
        shapes = [v for n, w, v in fields if n == 2 and w == 2]
        self.shape = _shape(shapes[-1], what) if shapes else ()
        self.shard, self.offset, self.size = facts.get(3, 0), facts.get(4, 0), facts.get(5, 0)
        self.crc = facts.get(6)
        count = 1
        for dim in self.shape:
            count *= dim
        if count * self.dtype.itemsize != self.size:
            raise Malformed(f"{what} has shape {self.shape} of {self.dtype.name} "
                            f"({count * self.dtype.itemsize} bytes) but {self.size} bytes saved")
        if self.crc is None and self.size:
            raise Malformed(f"{what} has no CRC-32C")
        self.what = what


# ------------------------------------------------------------------------- reading


def data_file(prefix: str, shard: int, shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{shards:05d}"


def _index(prefix: str) -> Tuple[int, Dict[str, _Entry]]:
    path = prefix + ".index"
    try:
        with open(path, "rb") as f:
            buf = f.read(MAX_INDEX_BYTES + 1)
    except OSError as e:
        raise UnreadableBundle(f"cannot read checkpoint index '{path}' "
                               f"({e.strerror or type(e).__name__})") from None
    if len(buf) > MAX_INDEX_BYTES:
        raise UnreadableBundle(f"'{path}' is over {MAX_INDEX_BYTES >> 20} MiB: {_FIX}")
    try:
        items = iter(tf_table.read_table(buf))
        key, header = next(items, (None, None))
        if key != b"":
            raise Malformed("has no header entry (key '') first")
        facts = _scalars(_fields(header, "the header"), "the header", {1: 0, 2: 0})
        shards, endianness = facts.get(1, 0), facts.get(2, 0)
        if not 1 <= shards <= MAX_SHARDS:
            raise Malformed(f"declares {shards} shards (1 to {MAX_SHARDS} accepted)")
        if endianness != 0:
            raise Malformed("was saved big-endian; not supported")
        entries = {}
        for key, value in items:
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise Malformed(f"has a variable name that is not UTF-8: {key[:60]!r}") from None
            entry = _Entry(name, value)
            if entry.shard >= shards:
                raise Malformed(f"{entry.what} is in shard {entry.shard} of {shards}")
            entries[name] = entry
    except Malformed as e:
        raise UnreadableBundle(f"'{path}' {e}: {_FIX}") from None
    return shards, entries


def load_bundle(prefix: str) -> Dict[str, np.ndarray]:
    """Every variable of the checkpoint `<prefix>` as {name: numpy array} (the names
    `tf.train.load_checkpoint(prefix).get_variable_to_shape_map()` lists, the values
    its `get_tensor` gives), each array its own copy, CRC-checked."""
    shards, entries = _index(prefix)
    sizes = {}
    for shard in sorted({e.shard for e in entries.values()}):
        path = data_file(prefix, shard, shards)
        try:
            sizes[shard] = os.path.getsize(path)
        except OSError as e:
            raise UnreadableBundle(f"cannot read checkpoint data '{path}' "
                                   f"({e.strerror or type(e).__name__})") from None
    for shard, size in sizes.items():
        claimed = sum(e.size for e in entries.values() if e.shard == shard)
        if claimed > size:  # before reading: overlapping entries cannot multiply memory
            raise UnreadableBundle(
                f"'{data_file(prefix, shard, shards)}' holds {size} bytes, fewer than the "
                f"{claimed} bytes of tensors '{prefix}.index' places in it (truncated, or "
                f"a crafted index): {_FIX}")
    out = {}
    for shard in sorted(sizes):
        path = data_file(prefix, shard, shards)
        mine = sorted((e.offset, name) for name, e in entries.items() if e.shard == shard)
        with open(path, "rb") as f:
            for offset, name in mine:
                entry = entries[name]
                if offset > sizes[shard] or entry.size > sizes[shard] - offset:
                    raise UnreadableBundle(
                        f"'{path}' is {sizes[shard]} bytes, but {entry.what} lies at bytes "
                        f"{offset}..{offset + entry.size} of it (truncated?): {_FIX}")
                f.seek(offset)
                raw = f.read(entry.size)
                if len(raw) != entry.size:
                    raise UnreadableBundle(f"'{path}' ended while reading {entry.what} "
                                           f"(truncated while being read?)")
                if entry.size and tf_table.mask(tf_table.crc32c(raw)) != entry.crc:
                    raise UnreadableBundle(f"'{path}': the bytes of {entry.what} fail their "
                                           f"CRC-32C check (damaged): {_FIX}")
                array = np.frombuffer(raw, entry.dtype).reshape(entry.shape)
                if entry.dtype == np.bool_ and raw.translate(None, b"\x00\x01"):
                    raise UnreadableBundle(f"'{path}': {entry.what} is bool but holds bytes "
                                           f"other than 0 and 1: {_FIX}")
                out[name] = array.astype(entry.dtype.newbyteorder("="), copy=True)
    return out
