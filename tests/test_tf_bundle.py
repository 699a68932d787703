"""The TensorBundle reader (`jaxgenre.models.tf_bundle`) against TensorFlow's own: every
variable of musicnn's four checkpoints, and bundles TensorFlow writes here, then damaged
or re-written with hostile entries — each refused in one line naming the file."""

import importlib.metadata
import os
import shutil
import struct

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import tensor_bundle_pb2

from jaxgenre.errors import UserError
from jaxgenre.models import tf_bundle, tf_table

MUSICNN = ("MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg")


def musicnn_prefix(model: str) -> str:
    index = importlib.metadata.distribution("musicnn").locate_file(f"musicnn/{model}/.index")
    return str(index)[:-len(".index")]


@pytest.mark.parametrize("model", MUSICNN)
def test_every_musicnn_variable_equals_tensorflows(model):
    prefix = musicnn_prefix(model)
    # tf.train.load_checkpoint(prefix) would take the prefix ('.../MSD_musicnn/') for a
    # folder and look for a 'checkpoint' file; the reader underneath takes the prefix.
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    got = tf_bundle.load_bundle(prefix)
    assert sorted(got) == sorted(reader.get_variable_to_shape_map())
    assert len(got) >= 86 and "dense/kernel" in got  # the checkpoints are real
    for name, value in got.items():
        want = reader.get_tensor(name)
        assert value.dtype == want.dtype and value.shape == want.shape, name
        assert np.array_equal(value, want), name


def test_crc32c_matches_the_check_value_and_a_bitwise_reference():
    assert tf_table.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value

    def bitwise(data):
        crc = 0xFFFFFFFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        return crc ^ 0xFFFFFFFF

    data = np.random.default_rng(0).integers(0, 256, 70_001, dtype=np.uint8).tobytes()
    assert tf_table.crc32c(data) == bitwise(data)  # the many-lanes path, with a tail
    assert tf_table.crc32c(data[:999]) == bitwise(data[:999])


# ------------------------------------------------------------------- hostile bundles

TENSORS = {"dense/kernel": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
           "steps": np.array([1, -2, 3, 2**40, 5], np.int64),
           "half": np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3)}


@pytest.fixture
def bundle(tmp_path):
    """A bundle TensorFlow writes (SaveV2, as tf.compat.v1.train.Saver does): its prefix."""
    prefix = str(tmp_path / "small" / "model.ckpt")
    os.makedirs(os.path.dirname(prefix))
    names = sorted(TENSORS)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(TENSORS[n]) for n in names])
    return prefix


def _write_table(path, items):
    """A table of one data block (every key whole, one restart point), its index block
    and footer, with TF's block trailers: what tensorflow/core/lib/io/table_builder
    writes for so few entries."""
    def block(entries):
        body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v
                        for k, v in entries)
        body += struct.pack("<II", 0, 1)
        return body + b"\x00" + struct.pack("<I", tf_table.mask(tf_table.crc32c(body + b"\x00")))

    data = block(items)
    index = block([(items[-1][0] + b"\xff", _varint(0) + _varint(len(data) - 5))])
    meta = block([])
    handles = (_varint(len(data)) + _varint(len(meta) - 5)
               + _varint(len(data) + len(meta)) + _varint(len(index) - 5))
    footer = handles.ljust(40, b"\x00") + struct.pack("<Q", tf_table.MAGIC)
    with open(path, "wb") as f:
        f.write(data + meta + index + footer)


def _varint(n):
    out = b""
    while True:
        out += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            return out


def _rewrite(prefix, name, change):
    """The index re-written with `change(entry)` applied to variable `name`'s
    BundleEntryProto (TF's own protobuf class)."""
    with open(prefix + ".index", "rb") as f:
        items = [(k, bytes(v)) for k, v in tf_table.read_table(f.read())]
    out = []
    for key, value in items:
        if key == name.encode():
            entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
            change(entry)
            value = entry.SerializeToString()
        out.append((key, value))
    _write_table(prefix + ".index", out)


def test_the_small_bundle_and_its_rewritten_index_read_as_tensorflow_reads_them(bundle):
    reader = tf.compat.v1.train.NewCheckpointReader(bundle)
    for loaded in (tf_bundle.load_bundle(bundle), None):
        if loaded is None:  # the test's table writer is faithful: a plain rewrite reads
            _rewrite(bundle, "steps", lambda entry: None)
            loaded = tf_bundle.load_bundle(bundle)
            assert np.array_equal(tf.compat.v1.train.NewCheckpointReader(bundle)
                                  .get_tensor("steps"), TENSORS["steps"])
        assert sorted(loaded) == sorted(TENSORS)
        for name, value in loaded.items():
            assert value.dtype == TENSORS[name].dtype
            assert np.array_equal(value, reader.get_tensor(name))
            assert np.array_equal(value, TENSORS[name])


def _damage_file(path, how):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data = how(data)
    with open(path, "wb") as f:
        f.write(bytes(data))


def _flip(at):
    def how(data):
        data[at] ^= 0x40
        return data
    return how


DATA = ".data-00000-of-00001"
CASES = {
    "truncated index": (".index", lambda p: _damage_file(p + ".index", lambda d: d[:-7]),
                        "magic"),
    "index cut in half": (".index", lambda p: _damage_file(p + ".index",
                                                           lambda d: d[:len(d) // 2]), ""),
    "empty index": (".index", lambda p: _damage_file(p + ".index", lambda d: b""), "footer"),
    "flipped byte in the index": (".index", lambda p: _damage_file(p + ".index", _flip(20)),
                                  "CRC-32C"),
    "truncated data file": (DATA, lambda p: _damage_file(p + DATA, lambda d: d[:-3]),
                            "holds 97 bytes, fewer than the 100"),
    "flipped byte in the data": (DATA, lambda p: _damage_file(p + DATA, _flip(5)), "CRC-32C"),
    "missing data file": (DATA, lambda p: os.remove(p + DATA), "cannot read"),
    "offset beyond the data file": (DATA, lambda p: _rewrite(
        p, "steps", lambda e: setattr(e, "offset", 10_000)), "lies at bytes"),
    "unknown dtype": (".index", lambda p: _rewrite(p, "steps", lambda e: setattr(e, "dtype", 99)),
                      "dtype 99"),
    "string dtype": (".index", lambda p: _rewrite(p, "steps", lambda e: setattr(e, "dtype", 7)),
                     "dtype 7"),
    "absurd shape": (".index", lambda p: _rewrite(
        p, "dense/kernel", lambda e: [d.__setattr__("size", 2**40) for d in e.shape.dim]),
        "bytes saved"),
    "absurd shape and size": (".index", lambda p: _rewrite(p, "dense/kernel", lambda e: (
        [d.__setattr__("size", 2**30) for d in e.shape.dim],  # 2**60 floats:
        setattr(e, "size", 2**62))), "fewer than the"),
    "negative dimension": (".index", lambda p: _rewrite(
        p, "steps", lambda e: setattr(e.shape.dim[0], "size", -5)), "dimension"),
    "shard out of range": (".index", lambda p: _rewrite(
        p, "steps", lambda e: setattr(e, "shard_id", 3)), "shard 3"),
    "sliced variable": (".index", lambda p: _rewrite(p, "steps", lambda e: e.slices.add()),
                        "slices"),
}


TF_REFUSES = ("truncated index", "index cut in half", "empty index", "flipped byte in the index",
              "truncated data file", "flipped byte in the data", "missing data file",
              "offset beyond the data file", "shard out of range")


@pytest.mark.parametrize("case", sorted(CASES))
def test_damaged_or_crafted_bundles_are_refused_naming_the_file(bundle, case):
    suffix, damage, message = CASES[case]
    damage(bundle)
    with pytest.raises(UserError, match=message) as caught:
        tf_bundle.load_bundle(bundle)
    text = str(caught.value)
    assert f"{bundle}{suffix}" in text and "\n" not in text
    # TensorFlow refuses these files too (a cross-check that the damage is real); on the
    # crafted dtypes and shapes it aborts the process (a failed CHECK), so those are left out
    if case in TF_REFUSES:
        with pytest.raises(Exception):
            reader = tf.compat.v1.train.NewCheckpointReader(bundle)
            for name in TENSORS:
                reader.get_tensor(name)


def test_a_missing_checkpoint_names_its_index(tmp_path):
    with pytest.raises(UserError, match="cannot read checkpoint index .*nothing.index"):
        tf_bundle.load_bundle(str(tmp_path / "nothing"))
