"""The pieces of TensorFlow's checkpoint index format that are not TensorFlow's own: the
LevelDB-style table (`tensorflow/core/lib/io/table`) it is written as, its varints, and
CRC-32C (Castagnoli) as TF masks it. `tf_bundle` reads a checkpoint with these.

A table is data blocks, an (empty) metaindex block, an index block whose values are the
data blocks' handles, and a 48-byte footer: the metaindex and index handles (varint
offset, varint size, zero-padded to 40 bytes) and the magic 0xdb4775248b80fb57. Every
block is followed by one compression-type byte and the masked CRC-32C of the block and
that byte. A block is entries (varint shared key length, varint unshared length, varint
value length, the key's unshared tail, the value), then uint32 restart offsets and their
count. Every length and offset is checked against what holds it before it is used, so
a damaged or crafted index raises `Malformed` (a message without the file's name; the
caller adds it), never IndexError, a hang or a huge allocation.
"""

from __future__ import annotations

import struct
from typing import Iterator, List, Tuple

import numpy as np

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5  # compression type byte + masked crc32c
_NO_COMPRESSION, _SNAPPY = 0, 1


class Malformed(ValueError):
    """The bytes are not what TensorFlow writes; the message says where."""


# ---------------------------------------------------------------------------- crc32c


def _table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1)
    return table.astype(np.uint32)


_TABLE = _table()
_TABLE_LIST = [int(v) for v in _TABLE]
_LANES = 1024  # long inputs: this many equal chunks advance together, one byte per step


def _advance(register: int, data: bytes) -> int:
    table = _TABLE_LIST
    for byte in data:
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register


def _zeros_operator(length: int) -> List[List[int]]:
    """The linear map "feed `length` zero bytes" on the 32-bit register, as four
    256-entry tables (one per byte of the register), built by feeding the 32 unit
    registers through the zeros together."""
    units = np.uint32(1) << np.arange(32, dtype=np.uint32)
    for _ in range(length):
        units = _TABLE[units & 0xFF] ^ (units >> 8)
    images = [int(u) for u in units]
    tables = []
    for byte in range(4):
        column = images[8 * byte: 8 * byte + 8]
        table = [0] * 256
        for value in range(1, 256):
            low = value & -value
            table[value] = table[value ^ low] ^ column[low.bit_length() - 1]
        tables.append(table)
    return tables


def crc32c(data) -> int:
    """CRC-32C of `data` (bytes-like). Inputs of 64 KiB and more are cut into `_LANES`
    equal chunks whose registers numpy advances side by side, then joined: by linearity
    register(a + b) = zeros_{len b}(register(a)) ^ register_from_0(b)."""
    view = memoryview(data).cast("B")
    n = len(view)
    if n < 65536:
        return _advance(0xFFFFFFFF, view) ^ 0xFFFFFFFF
    length = n // _LANES
    lanes = np.frombuffer(view[:length * _LANES], np.uint8).reshape(_LANES, length)
    registers = np.zeros(_LANES, np.uint32)
    for column in lanes.T:  # numpy: a column is one byte of every chunk
        registers = _TABLE[(registers ^ column) & 0xFF] ^ (registers >> 8)
    shift = _zeros_operator(length)
    register = 0xFFFFFFFF
    for lane in registers.tolist():
        register = (shift[0][register & 0xFF] ^ shift[1][(register >> 8) & 0xFF]
                    ^ shift[2][(register >> 16) & 0xFF] ^ shift[3][register >> 24]) ^ lane
    return _advance(register, view[length * _LANES:]) ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    """TensorFlow's (and LevelDB's) stored form of a CRC-32C."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- varints


def varint(buf, pos: int, end: int, what: str) -> Tuple[int, int]:
    """A base-128 varint of at most 10 bytes at `pos` (before `end`): (value, next)."""
    value = shift = 0
    while True:
        if pos >= end:
            raise Malformed(f"{what} runs past the end of its block")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise Malformed(f"{what} is a varint longer than 10 bytes")


# ---------------------------------------------------------------------------- table


def _handle(buf, pos: int, end: int, what: str) -> Tuple[int, int, int]:
    offset, pos = varint(buf, pos, end, f"{what}'s offset")
    size, pos = varint(buf, pos, end, f"{what}'s size")
    return offset, size, pos


def _block(buf: bytes, offset: int, size: int, what: str) -> memoryview:
    """A block's contents, its trailer checked: inside the file, uncompressed, CRC good."""
    limit = len(buf) - FOOTER_SIZE
    if offset > limit or size > limit - offset or TRAILER_SIZE > limit - offset - size:
        raise Malformed(f"{what} (offset {offset}, {size} bytes) lies outside the index")
    contents = memoryview(buf)[offset:offset + size]
    kind = buf[offset + size]
    if kind == _SNAPPY:
        raise Malformed(f"{what} is snappy-compressed, which this reader does not decode "
                        f"(TensorFlow writes checkpoint indexes uncompressed)")
    if kind != _NO_COMPRESSION:
        raise Malformed(f"{what} has unknown compression type {kind}")
    stored, = struct.unpack_from("<I", buf, offset + size + 1)
    if mask(crc32c(buf[offset:offset + size + 1])) != stored:
        raise Malformed(f"{what} fails its CRC-32C check (damaged)")
    return contents


def _entries(block: memoryview, what: str) -> Iterator[Tuple[bytes, memoryview]]:
    """(key, value) of each entry of a block, keys rebuilt from their shared prefixes."""
    if len(block) < 4:
        raise Malformed(f"{what} is {len(block)} bytes, too short for its restart count")
    restarts, = struct.unpack_from("<I", block, len(block) - 4)
    if restarts > (len(block) - 4) // 4:
        raise Malformed(f"{what} claims {restarts} restart points, more than it can hold")
    end = len(block) - 4 - 4 * restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = varint(block, pos, end, f"an entry of {what}")
        unshared, pos = varint(block, pos, end, f"an entry of {what}")
        length, pos = varint(block, pos, end, f"an entry of {what}")
        if shared > len(key) or unshared > end - pos or length > end - pos - unshared:
            raise Malformed(f"an entry of {what} has lengths ({shared}, {unshared}, {length}) "
                            f"that do not fit the block")
        key = key[:shared] + bytes(block[pos:pos + unshared])
        pos += unshared
        yield key, block[pos:pos + length]
        pos += length


def read_table(buf: bytes) -> Iterator[Tuple[bytes, memoryview]]:
    """Every (key, value) of a table file's bytes, in key order; keys strictly increase."""
    if len(buf) < FOOTER_SIZE:
        raise Malformed(f"is {len(buf)} bytes, shorter than a table's {FOOTER_SIZE}-byte footer")
    footer = len(buf) - FOOTER_SIZE
    magic, = struct.unpack_from("<Q", buf, len(buf) - 8)
    if magic != MAGIC:
        raise Malformed(f"ends in {magic:#018x}, not the table magic {MAGIC:#018x} "
                        f"(truncated, or not a checkpoint index)")
    _, _, pos = _handle(buf, footer, len(buf) - 8, "the metaindex handle")
    index_offset, index_size, _ = _handle(buf, pos, len(buf) - 8, "the index handle")
    index = _block(buf, index_offset, index_size, "the index block")
    previous = None
    for _, handle in _entries(index, "the index block"):
        offset, size, _ = _handle(handle, 0, len(handle), "a data block handle")
        what = f"the data block at offset {offset}"
        for key, value in _entries(_block(buf, offset, size, what), what):
            if previous is not None and key <= previous:
                raise Malformed(f"key {key[:60]!r} does not follow {previous[:60]!r} in order")
            previous = key
            yield key, value
