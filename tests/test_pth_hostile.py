"""models.pth against crafted `.pth` files: every tensor must lie inside a storage of the
archive's own, geometry must be non-negative ints, and what a file makes us allocate is
bounded by its size (zip bombs included). Each crafted file is refused in one line that
names it, and so is a pickle whose objects would be too many or nested too deep
(memo tricks: shared references, huge memo indices, copies); the legitimate layouts
torch writes (views of one storage, stride 0, empty, scalar) still read exactly as
`torch.load(weights_only=True)`.

The files are built by hand: a small pickle assembler below writes the same opcodes
torch.save does (checked against torch.load in the first test), so any field can be
replaced by a hostile value."""

from __future__ import annotations

import collections
import os
import pickle
import re
import struct
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

from jaxgenre.errors import UserError
from jaxgenre.models import pth, pth_objects, torchvision_port
from jaxgenre.models.pth_archive import short

MiB = 1 << 20


# --- a pickle assembler for torch.save's format ----------------------------------------

def _v(value) -> bytes:
    """Opcodes pushing a plain value (int, float, bool, str, tuple...)."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def storage(key: str, numel, stype: str = "FloatStorage") -> bytes:
    """Opcodes for the persistent id torch writes: ('storage', torch.<T>, key, 'cpu', n)."""
    return b"(" + _v("storage") + _global("torch", stype) + _v(key) + _v("cpu") + _v(numel) + b"tQ"


def tensor(storage_ops: bytes, offset=0, size=(), stride=(), raw: dict = None) -> bytes:
    """_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()); `raw`
    replaces a field's opcodes (offset/size/stride) by hand-built ones."""
    raw = raw or {}
    fields = [raw.get("offset", _v(offset)), raw.get("size", _v(tuple(size))),
              raw.get("stride", _v(tuple(stride)))]
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + storage_ops + b"".join(fields)
            + b"\x89" + _global("collections", "OrderedDict") + b")R" + b"tR")


def write_pth(path, tensors: dict, storages: dict, compress=zipfile.ZIP_STORED) -> str:
    """A torch.save-shaped zip: archive/data.pkl holding {name: opcodes}, archive/data/<key>."""
    pkl = b"\x80\x02}(" + b"".join(_v(k) + ops for k, ops in tensors.items()) + b"u."
    with zipfile.ZipFile(str(path), "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
        for key, data in storages.items():
            z.writestr(f"archive/data/{key}", data, compress_type=compress)
    return str(path)


FLOATS = np.arange(12, dtype=np.float32)


def test_the_assembler_writes_what_torch_load_reads(tmp_path):
    """The crafted files below differ from torch's only where the test says."""
    path = write_pth(tmp_path / "ok.pth",
                     {"w": tensor(storage("0", 12), 2, (2, 3), (4, 1))}, {"0": FLOATS.tobytes()})
    theirs = torch.load(path, weights_only=True)["w"].numpy()
    np.testing.assert_array_equal(theirs, [[2, 3, 4], [6, 7, 8]])
    np.testing.assert_array_equal(pth.load_state_dict(path)["w"], theirs)


# --- geometry: offsets, strides, sizes -------------------------------------------------

@pytest.mark.parametrize("offset,size,stride,match", [
    (0, (4,), (-1,), "negative"),             # walks backwards out of the storage
    (11, (12,), (-1,), "negative"),           # backwards inside it: torch refuses too
    (0, (3, 2), (4, -8), "negative"),
    (-1, (4,), (1,), "negative"),              # storage[-1:] then 3 elements past its end
    (-4, (4,), (1,), "negative"),
    (-100000, (), (), "negative"),
    (0, (-1,), (1,), "negative"),
    (0, (4,), (1 << 62,), "outside its storage"),
    (9, (2, 2), (2, 1), "outside its storage"),  # last element 9+2+1 = 12: one past
    (12, (), (), "outside its storage"),        # a scalar one past the end
])
def test_a_tensor_outside_its_storage_is_refused(tmp_path, offset, size, stride, match):
    path = write_pth(tmp_path / "geom.pth",
                     {"w": tensor(storage("0", 12), offset, size, stride)}, {"0": FLOATS.tobytes()})
    with pytest.raises(pth.UnreadableCheckpoint, match=rf"geom.pth'.*archive/data/0.*{match}"):
        pth.load_state_dict(path)


def test_stride_zero_cannot_blow_a_tiny_file_up(tmp_path):
    """One float and size 10**8 with stride 0: 400 MB from a few hundred bytes. The
    default rule bounds what a file may materialise by its size; nothing is allocated."""
    path = write_pth(tmp_path / "s0.pth",
                     {"w": tensor(storage("0", 1), 0, (10 ** 8,), (0,))}, {"0": b"\0" * 4})
    assert os.path.getsize(path) < 1000
    tracemalloc.start()
    try:
        with pytest.raises(pth.UnreadableCheckpoint, match=r"s0.pth'.*over the limit"):
            pth.load_state_dict(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * MiB


def test_sizes_whose_product_overflows_int64_are_refused(tmp_path):
    size = (1 << 32, 1 << 32, 1 << 32)  # 2**96 elements; int64 wraps to 0
    path = write_pth(tmp_path / "ovf.pth",
                     {"w": tensor(storage("0", 1), 0, size, (0, 0, 0))}, {"0": b"\0" * 4})
    with pytest.raises(pth.UnreadableCheckpoint, match=r"ovf.pth'.*over the limit"):
        pth.load_state_dict(path)


@pytest.mark.parametrize("field,value,match", [
    ("size", (2.7,), "size"),                  # int(2.7) would silently read 2
    ("size", (True, 3), "size"),
    ("stride", (1.0,), "stride"),
    ("size", ((2,), (2,)), "size"),
    ("size", [3], "size"),                     # a list, not torch's tuple
    ("offset", 1.5, "offset"),
    ("offset", True, "offset"),
    ("offset", "1", "offset"),
])
def test_geometry_that_is_not_ints_is_refused(tmp_path, field, value, match):
    geometry = {"offset": 0, "size": (3,), "stride": (1,)}
    geometry[field] = value
    ops = tensor(storage("0", 12), raw={k: _v(v) for k, v in geometry.items()})
    path = write_pth(tmp_path / "types.pth", {"w": ops}, {"0": FLOATS.tobytes()})
    with pytest.raises(pth.UnreadableCheckpoint, match=rf"types.pth'.*{match}.*int"):
        pth.load_state_dict(path)


def test_a_huge_number_of_dims_is_refused(tmp_path):
    ops = tensor(storage("0", 12), 0, (1,) * 100_000, (1,) * 100_000)
    path = write_pth(tmp_path / "dims.pth", {"w": ops}, {"0": FLOATS.tobytes()})
    with pytest.raises(pth.UnreadableCheckpoint, match=r"dims.pth'.*100000 dimensions"):
        pth.load_state_dict(path)


def test_size_and_stride_of_different_lengths_are_refused(tmp_path):
    path = write_pth(tmp_path / "len.pth",
                     {"w": tensor(storage("0", 12), 0, (2, 2), (1,))}, {"0": FLOATS.tobytes()})
    with pytest.raises(pth.UnreadableCheckpoint, match=r"len.pth'.*2 sizes but 1 strides"):
        pth.load_state_dict(path)


# --- storages: only the archive's own ---------------------------------------------------

def test_a_tensor_used_as_another_tensors_storage_is_refused(tmp_path):
    """A rebuilt (2, 6) array as the storage of a second tensor: its offset would count
    rows and its bound elements, reading past the array."""
    inner = tensor(storage("0", 12), 0, (2, 6), (6, 1))
    path = write_pth(tmp_path / "nest.pth", {"w": tensor(inner, 1, (12,), (1,))},
                     {"0": FLOATS.tobytes()})
    with pytest.raises(pth.UnreadableCheckpoint, match=r"nest.pth'.*not one of the file's "
                                                       r"storages"):
        pth.load_state_dict(path)


@pytest.mark.parametrize("field", ["offset", "size", "stride"])
def test_a_storage_where_geometry_goes_is_refused(tmp_path, field):
    """A storage's values would become sizes (int() of each element)."""
    big = np.full(3, 50_000, dtype=np.int64).tobytes()
    raw = {field: storage("1", 3, "LongStorage")}
    ops = tensor(storage("0", 12), 0, (3,), (1,), raw=raw)
    path = write_pth(tmp_path / "swap.pth", {"w": ops}, {"0": FLOATS.tobytes(), "1": big})
    with pytest.raises(pth.UnreadableCheckpoint, match=rf"swap.pth'.*{field}"):
        pth.load_state_dict(path)


def test_a_bare_storage_as_a_value_is_refused(tmp_path):
    path = write_pth(tmp_path / "bare.pth", {"w": storage("0", 12)}, {"0": FLOATS.tobytes()})
    with pytest.raises(pth.UnreadableCheckpoint, match=r"bare.pth' does not hold a state dict"):
        pth.load_state_dict(path)


@pytest.mark.parametrize("numel,data,match", [
    (13, FLOATS.tobytes(), r"declares 13 FloatStorage elements \(52 bytes\) but holds 48"),
    (3, FLOATS.tobytes(), r"declares 3 FloatStorage elements \(12 bytes\) but holds 48"),
    (2, b"\0" * 10, r"declares 2 FloatStorage elements \(8 bytes\) but holds 10"),
    (-1, b"", r"declares -1"),
    (2.0, b"\0" * 8, r"declares 2.0"),
])
def test_the_declared_numel_must_match_the_storage_bytes(tmp_path, numel, data, match):
    path = write_pth(tmp_path / "numel.pth", {"w": tensor(storage("0", numel), 0, (1,), (1,))},
                     {"0": data})
    with pytest.raises(pth.UnreadableCheckpoint, match=r"numel.pth'.*archive/data/0.*" + match):
        pth.load_state_dict(path)


def test_one_storage_under_two_types_is_refused(tmp_path):
    tensors = {"a": tensor(storage("0", 12), 0, (1,), (1,)),
               "b": tensor(storage("0", 6, "LongStorage"), 0, (1,), (1,))}
    path = write_pth(tmp_path / "twotypes.pth", tensors, {"0": FLOATS.tobytes()})
    with pytest.raises(pth.UnreadableCheckpoint, match=r"twotypes.pth'.*archive/data/0.*"
                                                       r"FloatStorage.*LongStorage"):
        pth.load_state_dict(path)


STORAGE_RETYPED = (b"(" + _v("storage") + _global("torch", "FloatStorage")
                   + _v((None, {"dtype": "float64"})) + b"b" + _v("0") + _v("cpu") + _v(12) + b"tQ")


@pytest.mark.parametrize("ops", [
    tensor(storage("0", 12), 0, (3,), (1,)) + _v((1, (2,), None, False, "")) + b"b",
    tensor(STORAGE_RETYPED, 0, (3,), (1,)),
], ids=["tensor", "storage-type"])
def test_a_pickle_setting_state_on_a_tensor_or_storage_is_refused(tmp_path, ops):
    """BUILD (pickle's `b`) on a rebuilt tensor would call ndarray.__setstate__; on a
    storage type it would set its dtype (12 floats read as 6 doubles)."""
    path = write_pth(tmp_path / "build.pth", {"w": ops}, {"0": FLOATS.tobytes()})
    with pytest.raises(pth.UnsafeCheckpoint, match=r"build.pth'.*sets state"):
        pth.load_state_dict(path)


def test_a_member_stored_twice_is_refused(tmp_path):
    path = str(tmp_path / "dup.pth")
    write_pth(path, {"w": tensor(storage("0", 12), 0, (3,), (1,))}, {"0": FLOATS.tobytes()})
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(path, "a") as z:
            z.writestr("archive/data/0", np.ones(12, np.float32).tobytes())
    with pytest.raises(pth.UnreadableCheckpoint, match=r"dup.pth'.*archive/data/0.*twice"):
        pth.load_state_dict(path)


# --- zip bombs -------------------------------------------------------------------------

def _zero_bomb(path, mib: int, declared: int = None) -> str:
    """archive/data/0: `mib` MiB of zeros, deflated (~1000x); with `declared`, the zip's
    headers claim that many bytes instead (the pickle declares declared/4 floats)."""
    numel = (declared if declared is not None else mib * MiB) // 4
    path = write_pth(path, {"w": tensor(storage("0", numel), 0, (1,), (1,))}, {})
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("archive/data/0", "w") as f:
            for _ in range(mib):
                f.write(bytes(MiB))
    if declared is not None:  # patch the uncompressed size in both headers
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("archive/data/0")
        blob = bytearray(open(path, "rb").read())
        struct.pack_into("<I", blob, info.header_offset + 22, declared)
        central = blob.find(b"PK\x01\x02")
        while blob[central + 46:central + 46 + 14] != b"archive/data/0":
            central = blob.find(b"PK\x01\x02", central + 4)
        struct.pack_into("<I", blob, central + 24, declared)
        open(path, "wb").write(bytes(blob))
    return path


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_deflated_storage_larger_than_the_file_allows_is_refused_unread(tmp_path):
    """64 MiB of zeros deflate to ~64 KB: the default rule (at most 8x the file, and
    never less than 16 MiB) refuses it from its declared size, before inflating."""
    path = _zero_bomb(tmp_path / "bomb.pth", 64)
    assert os.path.getsize(path) < 200_000

    def load():
        with pytest.raises(pth.UnreadableCheckpoint, match=r"bomb.pth'.*archive/data/0.*over "
                                                           r"the limit"):
            pth.load_state_dict(path)
    assert _peak(load) < 4 * MiB


def test_a_member_inflating_past_its_declared_size_is_cut_there(tmp_path):
    """Headers claim 8 bytes, the stream inflates to 64 MiB: reading stops at 8 bytes
    (and the checksum then fails) instead of inflating everything first."""
    path = _zero_bomb(tmp_path / "liar.pth", 64, declared=8)

    def load():
        with pytest.raises(pth.UnreadableCheckpoint, match=r"liar.pth'.*archive/data/0"):
            pth.load_state_dict(path)
    assert _peak(load) < 4 * MiB


def test_the_budget_counts_storages_and_tensors(tmp_path):
    """A 1000-float storage (4000 bytes) and one tensor over all of it (4000 bytes)
    materialise 8000 bytes: a cap of 7999 refuses the file, 8000 reads it."""
    data = np.arange(1000, dtype=np.float32)
    path = write_pth(tmp_path / "cap.pth", {"w": tensor(storage("0", 1000), 0, (1000,), (1,))},
                     {"0": data.tobytes()}, compress=zipfile.ZIP_DEFLATED)
    with pytest.raises(pth.UnreadableCheckpoint, match=r"cap.pth'.*over the limit of 7999"):
        pth.load_state_dict(path, max_bytes=7999)
    np.testing.assert_array_equal(pth.load_state_dict(path, max_bytes=8000)["w"], data)


def test_a_user_checkpoint_without_a_pin_gets_the_same_checks(tmp_path):
    """config.model.checkpoint with no checkpoint_sha256: the crafted file is refused in
    one line naming it, as a UserError (exit status 2 at the entry points)."""
    path = write_pth(tmp_path / "mine.pth",
                     {"fc.weight": tensor(storage("0", 12), 11, (12,), (-1,))},
                     {"0": FLOATS.tobytes()})
    with pytest.raises(UserError, match=r"mine.pth'.*negative"):
        torchvision_port.load_imagenet("resnet18", 10, path=path, sha256=None)


# --- legitimate files: exactly torch.load ----------------------------------------------

def test_every_layout_torch_writes_still_equals_torch_load(tmp_path):
    torch.manual_seed(0)
    base = torch.randn(5, 6)
    big = torch.randn(2, 3, 4, 5)
    state = {
        "base": base, "slice": base[1:4, 2:], "transposed": base.t(), "step": base[::2, ::3],
        "row": base[3], "element": base[2, 4], "flat_tail": base.view(-1)[7:],
        "expanded": torch.randn(3).expand(4, 3), "broadcast": torch.randn(1, 1).expand(2, 5),
        "permuted": big.permute(3, 1, 0, 2), "channels_last":
            big.contiguous(memory_format=torch.channels_last),
        "empty": torch.empty(0), "empty_2d": torch.empty(3, 0), "empty_slice": base[2:2],
        "empty_view_end": base.view(-1)[30:], "scalar": torch.tensor(7, dtype=torch.int64),
        "bf16": torch.randn(4, 3).bfloat16().t(), "half": torch.randn(3).half(),
        "bool": torch.tensor([[True, False], [False, True]]).t(),
        "int8": torch.arange(-3, 3, dtype=torch.int8), "int16": torch.arange(4, dtype=torch.int16),
        "uint8": torch.arange(250, 256, dtype=torch.uint8)[::2],
        "double": torch.randn(2, 2, dtype=torch.float64).t(),
        "param": torch.nn.Parameter(torch.randn(3, 2).t()),
        "one_of_many": torch.randn(100)[99:],
    }
    path = str(tmp_path / "layouts.pth")
    torch.save(state, path)
    ours = pth.load_state_dict(path)
    theirs = torch.load(path, weights_only=True)
    assert list(ours) == list(theirs)
    for name, t in theirs.items():
        t, got = t.detach(), ours[name]
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: compare the bits
            t, got = t.view(torch.int16), got.view(np.int16)
        expected = t.numpy()
        assert got.shape == expected.shape and got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_data_pkl_is_read_under_the_same_cap(tmp_path):
    """The pickle member too is never inflated past the cap: here 64 bytes, while the
    pickle (one tensor) is longer; the refusal names the member."""
    path = write_pth(tmp_path / "pkl.pth", {"w": tensor(storage("0", 12), 0, (3,), (1,))},
                     {"0": FLOATS.tobytes()})
    with zipfile.ZipFile(path) as z:
        size = z.getinfo("archive/data.pkl").file_size
    assert size > 64
    with pytest.raises(pth.UnreadableCheckpoint, match=rf"pkl.pth' member 'archive/data.pkl' "
                                                       rf"would inflate to {size} bytes, over "
                                                       rf"the limit of 64"):
        pth.load_state_dict(path, max_bytes=64)


# --- the pickle: scanned, and bounded, before anything is built ------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pickle_pth(path, pkl: bytes, compress=zipfile.ZIP_STORED) -> str:
    """A zip holding only archive/data.pkl = `pkl` (deflated: a 1 MiB pickle of one
    repeated opcode is a ~1 KB file)."""
    with zipfile.ZipFile(str(path), "w", compress) as z:
        z.writestr("archive/data.pkl", pkl)
    return str(path)


def _dag(depth: int) -> list:
    """x = [x, x], `depth` times: a 2**depth-leaf tree whose pickle is small (memo)."""
    x = []
    for _ in range(depth):
        x = [x, x]
    return x


NESTED = {  # case: (data.pkl, what the refusal says)
    "dag_state": (pickle.dumps(_dag(60), protocol=2),
                  r"does not hold a state dict of tensors \(got \[\[\[\[\.\.\.\], "),
    "dag_pid": (b"\x80\x02}(" + _v("w") + pickle.dumps(_dag(60), protocol=2)[2:-1] + b"Qu.",
                r"holds an unexpected reference \[\[\[\["),
    "deep_list": (b"\x80\x02" + b"(" * 300_000 + b"]" + b"l" * 300_000 + b".",
                  r"member 'archive/data.pkl' nests containers more than 64 deep"),
    "deep_tuple_key": (b"\x80\x02}" + b")" + b"\x85" * 1_000_000 + b"K\x01s.",
                       r"member 'archive/data.pkl' nests containers more than 64 deep"),
}


@pytest.mark.parametrize("case", sorted(NESTED))
def test_nesting_that_hung_or_crashed_is_refused_in_one_line(tmp_path, case):
    """A shared-reference list 60 levels deep (as the state or as a storage's id: its
    repr has 2**60 parts), a list 300,000 deep (repr's RecursionError) and a tuple
    1,000,000 deep used as a dict key (hashing it overflows the C stack). Run in a
    child process, so that a hang or a crash fails this test instead of the suite."""
    pkl, says = NESTED[case]
    path = _pickle_pth(tmp_path / f"{case}.pth", pkl, zipfile.ZIP_DEFLATED)
    assert_refused_in_a_child(path, case, says)


def assert_refused_in_a_child(path: str, case: str, says: str) -> None:
    """`pth.load_state_dict(path)` in a child process (a hang or a crash fails the test,
    not the suite) refuses the file in one line naming it and matching `says`."""
    code = ("import sys\nfrom jaxgenre.models import pth\ntry:\n"
            "    pth.load_state_dict(sys.argv[1])\nexcept pth.UserError as e:\n"
            "    print('refused', e)\nelse:\n    print('read')\n")
    try:
        done = subprocess.run([sys.executable, "-c", code, path], cwd=ROOT, timeout=60,
                              capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: still loading after 60 s")
    assert done.returncode == 0, f"{case}: status {done.returncode}: {done.stderr[-500:]}"
    line = done.stdout.strip()
    assert line.startswith(f"refused '{path}' ") and "\n" not in line and len(line) < 500, line
    assert re.search(says, line), line


def test_short_is_bounded_whatever_the_value():
    """`short` (every message's view of a pickled value) shows a few items of a few
    levels: no full repr first (a DAG's is exponential, a deep list's recursion fails,
    a 100,000-digit int's refuses to print)."""
    deep = []
    for _ in range(100_000):
        deep = [deep]
    assert short(deep, 40) == "[[[[...]]]]"
    assert short(2 ** 100_000) == "<int of 100001 bits>"
    assert short("x" * 10 ** 7, 12) == "'xxxxxxxx..."
    assert short(_dag(60), 30) == "[[[[...], [...]], [[...], [..."
    assert short(collections.OrderedDict(a=_dag(60)), 24) == "OrderedDict({'a': [[[..."
    assert short((1, "b", [2.5, None], {3: b"c"})) == repr((1, "b", [2.5, None], {3: b"c"}))
    assert short(list(range(100))) == "[0, 1, 2, 3, ...]"


@pytest.mark.parametrize("case", ["many_lists", "memo_index", "ordered_dict_copies",
                                  "build_copies"])
def test_a_small_pickle_cannot_make_many_objects(tmp_path, case):
    """1 Mi empty lists (a ~1 KB file); one memo slot at index 2**24 (the unpickler sizes
    its memo by the index); 1000 OrderedDicts each copying a memoized 2000-pair list;
    1000 BUILDs each copying a memoized 2000-key dict. Each would take 100+ MiB; every
    object the pickle makes is counted before anything is built, and torch.save never
    writes `OrderedDict(items)` or needs a state dict's attributes."""
    pairs = [(f"k{i}", i) for i in range(2000)]
    od = _global("collections", "OrderedDict") + b"q\x01"  # memo 1 (memo 0: the pairs)
    pkl = {
        "many_lists": b"\x80\x02" + b"]" * (MiB - 3) + b".",
        "memo_index": b"\x80\x02}r" + struct.pack("<I", 1 << 24) + b".",
        "ordered_dict_copies": b"\x80\x02(" + pickle.dumps(pairs, 2)[2:-1] + b"0" + od + b"0"
                               + b"h\x01h\x00\x85R" * 1000 + b"l.",
        "build_copies": b"\x80\x02(" + pickle.dumps(dict(pairs), 2)[2:-1] + b"0" + od + b"0"
                        + b"h\x01)Rh\x00b" * 1000 + b"l.",
    }[case]
    path = _pickle_pth(tmp_path / f"{case}.pth", pkl, zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 100_000

    def load():
        with pytest.raises(pth.UnreadableCheckpoint, match=rf"{case}.pth' "):
            pth.load_state_dict(path)
    assert _peak(load) < 32 * MiB


def test_a_data_pkl_inflating_past_the_file_is_refused_unread(tmp_path):
    """data.pkl may inflate to the file's size (1 MiB at least): torch.save stores it
    uncompressed, ~100 bytes a tensor. Here 2 MiB of None/POP deflate to ~2 KB."""
    pkl = b"\x80\x02" + b"N0" * MiB + b"}."
    path = _pickle_pth(tmp_path / "longpkl.pth", pkl, zipfile.ZIP_DEFLATED)
    with pytest.raises(pth.UnreadableCheckpoint, match=rf"longpkl.pth' member 'archive/data.pkl'"
                                                       rf" would inflate to {len(pkl)} bytes, "
                                                       rf"over the limit of {MiB} "):
        pth.load_state_dict(path)


@pytest.mark.parametrize("name", ["_rebuild_parameter", "_rebuild_tensor_v2"])
def test_a_pickle_cannot_set_attributes_on_the_functions_it_calls(tmp_path, name):
    """BUILD on an allowed global would write into the reader's own function (its
    `__dict__`, or `__defaults__` with a slot state), changing every later load."""
    pkl = b"\x80\x02" + _global("torch._utils", name) + _v({"marker": 1}) + b"b0}."
    path = _pickle_pth(tmp_path / "setattr.pth", pkl)
    with pytest.raises(pth.UnsafeCheckpoint, match=r"setattr.pth' sets state"):
        pth.load_state_dict(path)
    assert not hasattr(pth_objects.rebuild_parameter, "marker")
    assert not hasattr(pth._Unpickler.rebuild_tensor_v2, "marker")


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_torch_can_write_still_reads(tmp_path, protocol):
    """The opcode scan knows every opcode: torch.save's default protocol 2 and the
    framed, memoized ones (`pickle_protocol=4/5`, which torch's own weights-only loader
    refuses: FRAME) read as torch.load does (a file of our own: no need for
    weights_only)."""
    torch.manual_seed(protocol)
    state = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)).state_dict()
    path = str(tmp_path / f"p{protocol}.pth")
    torch.save(state, path, pickle_protocol=protocol)
    ours, theirs = pth.load_state_dict(path), torch.load(path, weights_only=False)
    assert list(ours) == list(theirs)
    for name, t in theirs.items():
        np.testing.assert_array_equal(ours[name], t.numpy(), err_msg=name)
