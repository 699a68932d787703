"""models.pth on torch's legacy `.pth` format (torch < 1.6's default, which PANNs' 2020
checkpoints may use) and on state dicts inside a dict (`entry=`): files torch writes
read exactly as `torch.load(weights_only=True)` in both formats, and crafted legacy
files are refused in one line naming them, before anything runs or is allocated.

Legacy files are written by torch itself (`_use_new_zipfile_serialization=False`), then
edited section by section (`_split`), or assembled by hand (`legacy`: the same five
pickles and storages, checked against torch.load in its own test)."""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import re
import struct
import tarfile
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

from jaxgenre.errors import UserError
from jaxgenre.models import pth, pth_legacy
from test_pth_hostile import assert_refused_in_a_child

MiB = 1 << 20
FORMATS = ["zip", "legacy"]


def save(obj, path, fmt: str, **kwargs) -> str:
    """`torch.save` in format `fmt`; checks the file is in it (by its first bytes)."""
    torch.save(obj, str(path), _use_new_zipfile_serialization=(fmt == "zip"), **kwargs)
    with open(path, "rb") as f:
        assert f.read(2) == (b"PK" if fmt == "zip" else b"\x80" + bytes([kwargs.get(
            "pickle_protocol", 2)])), fmt
    return str(path)


def assert_same(ours, theirs) -> None:
    """Same keys in the same order, same dtypes and shapes, same values (bfloat16 by
    its bits: numpy has no bfloat16 of its own)."""
    assert list(ours) == list(theirs)
    for name, t in theirs.items():
        t, got = t.detach(), ours[name]
        if t.dtype == torch.bfloat16:
            t, got = t.view(torch.int16), got.view(np.int16)
        expected = t.numpy()
        assert got.shape == expected.shape and got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


def _layouts() -> dict:
    torch.manual_seed(0)
    base = torch.randn(5, 6)
    return {
        "base": base, "slice": base[1:4, 2:], "transposed": base.t(), "step": base[::2, ::3],
        "row": base[3], "element": base[2, 4], "flat_tail": base.view(-1)[7:],
        "expanded": torch.randn(3).expand(4, 3), "scalar": torch.tensor(7, dtype=torch.int64),
        "float_scalar": torch.tensor(2.5), "empty": torch.empty(0),
        "empty_2d": torch.empty(3, 0), "empty_slice": base[2:2],
        "half": torch.randn(3, 4).half().t(), "bf16": torch.randn(4, 3).bfloat16(),
        "long": torch.arange(-5, 5, dtype=torch.int64)[3:],
        "bool": torch.tensor([[True, False], [False, True]]).t(),
        "int8": torch.arange(-3, 3, dtype=torch.int8), "int16": torch.arange(4, dtype=torch.int16),
        "int32": torch.arange(6, dtype=torch.int32).view(2, 3), "uint8":
            torch.arange(250, 256, dtype=torch.uint8)[::2],
        "double": torch.randn(2, 2, dtype=torch.float64).t(),
        "param": torch.nn.Parameter(torch.randn(3, 2)),
    }


def _module_state() -> collections.OrderedDict:
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4, 2),
                              torch.nn.BatchNorm1d(2))
    net.train()
    net(torch.randn(2, 1, 3, 3))  # non-trivial running statistics, num_batches_tracked 1
    return net.state_dict()


# --- files torch writes: exactly torch.load -------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_every_dtype_and_layout_equals_torch_load(tmp_path, fmt):
    path = save(_layouts(), tmp_path / "layouts.pth", fmt)
    assert_same(pth.load_state_dict(path), torch.load(path, weights_only=True))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_module_state_dict_equals_torch_load(tmp_path, fmt):
    state = _module_state()
    assert "1.num_batches_tracked" in state and state["1.num_batches_tracked"].item() == 1
    path = save(state, tmp_path / "net.pth", fmt)
    ours = pth.load_state_dict(path)
    assert_same(ours, torch.load(path, weights_only=True))
    assert ours["1.num_batches_tracked"].dtype == np.int64


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_state_dict_inside_a_dict_is_read_by_entry(tmp_path, fmt):
    """PANNs' shape: {'model': state_dict, 'iteration': ..., ...}."""
    path = save({"model": _module_state(), "iteration": 5, "note": "x"},
                tmp_path / "panns.pth", fmt)
    assert_same(pth.load_state_dict(path, entry="model"),
                torch.load(path, weights_only=True)["model"])


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_every_pickle_protocol_reads_in_the_legacy_format(tmp_path, protocol):
    """Each of the five pickles in `protocol` (4 and 5 frame their opcodes, which
    torch's weights-only loader refuses: compared with a plain torch.load)."""
    path = save(_module_state(), tmp_path / f"p{protocol}.pth", "legacy",
                pickle_protocol=protocol)
    assert_same(pth.load_state_dict(path), torch.load(path, weights_only=False))


def test_a_checkpoint_saved_on_a_gpu_reads_as_on_the_cpu(tmp_path):
    """PANNs trained on a GPU: its storages' location is 'cuda:0', not 'cpu'."""
    data = _legacy_bytes({"model": _module_state(), "iteration": 5})
    assert data.count(b"X\x03\x00\x00\x00cpu") == 1  # memoized once, then BINGET
    path = _write(tmp_path / "gpu.pth", data.replace(b"X\x03\x00\x00\x00cpu",
                                                      b"X\x06\x00\x00\x00cuda:0"))
    assert_same(pth.load_state_dict(path, entry="model"),
                torch.load(path, weights_only=True, map_location="cpu")["model"])


# --- entry= ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_other_entries_with_plain_values_and_tensors_are_ignored(tmp_path, fmt):
    state = _module_state()
    path = save({"iteration": 5, "model": state, "note": "x", "lr": 0.1, "best": True,
                 "none": None, "history": [1.0, 2.5, (3, "a")], "mapping": {1: "a", "b": [2]},
                 "optimizer": {"state": {0: {"step": torch.tensor(3.0),
                                              "exp_avg": torch.randn(2)}},
                               "param_groups": [{"lr": 0.1, "params": [0, 1]}]}},
                tmp_path / "extra.pth", fmt)
    assert_same(pth.load_state_dict(path, entry="model"), state)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_entry_names_the_file_the_entry_and_the_keys(tmp_path, fmt):
    path = save({"model_state": _module_state(), "iteration": 5}, tmp_path / "miss.pth", fmt)
    with pytest.raises(pth.UnreadableCheckpoint) as info:
        pth.load_state_dict(path, entry="model")
    assert str(info.value) == (f"'{path}' has no entry 'model'; its entries are "
                               f"'model_state', 'iteration'")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("obj,entry,says", [
    ({"model": 5, "iteration": 5}, "model", r"entry 'model' does not hold a state dict "
                                            r"of tensors \(got 5\)"),
    ({"model": {"w": torch.ones(2), "step": 3}}, "model", r"entry 'model' does not hold a "
                                                           r"state dict"),
    ({"model": [torch.ones(2)]}, "model", r"entry 'model' does not hold a state dict"),
    ({"model": {"w": torch.ones(2)}, "iteration": 5}, "iteration",
     r"entry 'iteration' does not hold a state dict of tensors \(got 5\)"),
    ([torch.ones(2)], "model", r"does not hold a dict of entries, so no entry 'model'"),
])
def test_an_entry_that_is_not_a_state_dict_is_refused(tmp_path, fmt, obj, entry, says):
    path = save(obj, tmp_path / "notsd.pth", fmt)
    with pytest.raises(pth.UnreadableCheckpoint, match=rf"notsd.pth' {says}"):
        pth.load_state_dict(path, entry=entry)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("key", ["model", "state_dict"])
def test_without_entry_a_nested_state_dict_is_pointed_to(tmp_path, fmt, key):
    path = save({key: _module_state(), "epoch": 3}, tmp_path / "nested.pth", fmt)
    with pytest.raises(pth.UnreadableCheckpoint,
                       match=rf"nested.pth' does not hold a state dict .*entries '{key}', "
                             rf"'epoch': is the state dict its '{key}' entry "
                             rf"\(load_state_dict\(\.\.\., entry='{key}'\)\)\?$"):
        pth.load_state_dict(path)
    assert list(pth.load_state_dict(path, entry=key)) == list(_module_state())


def test_another_entry_holding_more_than_plain_values_is_refused(tmp_path):
    """A global left uncalled (a class, not a value) beside the state dict."""
    path = str(tmp_path / "odd.pth")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(
            {"model": {}, "factory": collections.OrderedDict}, protocol=2))
    with pytest.raises(pth.UnreadableCheckpoint, match=r"odd.pth' entry 'factory' holds "
                                                       r"<collections.OrderedDict>, not plain"):
        pth.load_state_dict(path, entry="model")


# --- the legacy format's sections, by hand ----------------------------------------------

def _legacy_bytes(obj, **kwargs) -> bytes:
    f = io.BytesIO()
    torch.save(obj, f, _use_new_zipfile_serialization=False, **kwargs)
    return f.getvalue()


def _write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _split(data: bytes):
    """A legacy file's five pickles (magic, version, sys_info, object, keys) and the
    storages after them."""
    f, pickles = io.BytesIO(data), []
    for _ in range(5):
        start = f.tell()
        for _ in pickletools.genops(f):
            pass
        pickles.append(data[start:f.tell()])
    return pickles, data[f.tell():]


def _v(value) -> bytes:
    """Opcodes pushing a plain value."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def storage(key: str, numel, stype: str = "FloatStorage", view=None, fields=None) -> bytes:
    """Opcodes for the persistent id torch writes: ('storage', torch.<T>, key, 'cpu',
    numel, view_metadata); `fields` replaces the whole tuple's values."""
    values = fields if fields is not None else (
        _v("storage") + _global("torch", stype) + _v(key) + _v("cpu") + _v(numel) + _v(view))
    return b"(" + values + b"tQ"


def tensor(storage_ops: bytes, offset=0, size=(), stride=()) -> bytes:
    """_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + storage_ops + _v(offset)
            + _v(tuple(size)) + _v(tuple(stride)) + b"\x89"
            + _global("collections", "OrderedDict") + b")R" + b"tR")


def obj_pickle(entries: dict) -> bytes:
    """A dict pickle, {name: opcodes}."""
    return b"\x80\x02}(" + b"".join(_v(k) + ops for k, ops in entries.items()) + b"u."


SYS_INFO = {"protocol_version": 1001, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}


def legacy(path, pkl: bytes, storages: dict, keys=None, sys_info=SYS_INFO,
           magic=pth_legacy.MAGIC_NUMBER, version=1001, trailing=b"") -> str:
    """A legacy file: the five pickles, then for each key in `keys` (the storages' own
    by default), then for each storage not listed, its count and bytes; `storages`:
    key -> (count, bytes)."""
    keys = list(storages) if keys is None else keys
    head = b"".join(pickle.dumps(v, protocol=2) for v in (magic, version, sys_info))
    order = [k for k in keys if k in storages] + [k for k in storages if k not in keys]
    body = b"".join(struct.pack("<q", storages[k][0]) + storages[k][1] for k in order)
    return _write(path, head + pkl + pickle.dumps(keys, protocol=2) + body + trailing)


FLOATS = np.arange(12, dtype=np.float32)
ONE = {"w": tensor(storage("0", 12), 2, (2, 3), (4, 1))}


def test_the_assembler_writes_what_torch_load_reads(tmp_path):
    """The crafted files below differ from torch's only where each test says."""
    path = legacy(tmp_path / "ok.pth", obj_pickle(ONE), {"0": (12, FLOATS.tobytes())})
    theirs = torch.load(path, weights_only=True)["w"].numpy()
    np.testing.assert_array_equal(theirs, [[2, 3, 4], [6, 7, 8]])
    np.testing.assert_array_equal(pth.load_state_dict(path)["w"], theirs)
    pickles, rest = _split(_legacy_bytes({"w": torch.ones(2)}))
    assert pickle.loads(pickles[2]) == SYS_INFO and len(rest) == 8 + 8


def _refused(path, match: str, error=pth.UnreadableCheckpoint, **kwargs) -> str:
    """Loads `path`, which must fail with `error`: one line naming the file, matching."""
    with pytest.raises(error) as info:
        pth.load_state_dict(path, **kwargs)
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert message.startswith(f"'{path}' ") and "\n" not in message, message
    assert re.search(match, message), message
    return message


MAGIC = pickle.dumps(pth_legacy.MAGIC_NUMBER, protocol=2)


@pytest.mark.parametrize("content,match", [
    (pickle.dumps(pth_legacy.MAGIC_NUMBER + 1, protocol=2) + b"rest",
     r"not a torch checkpoint.*legacy magic number \(but with a pickle of "),
    (pickle.dumps(str(pth_legacy.MAGIC_NUMBER), protocol=2), r"legacy magic number"),
    (pickle.dumps(True, protocol=2), r"legacy magic number"),
    (b"", r"not a torch checkpoint.*truncated"),
    (b"hello, this is not a checkpoint\n", r"not a torch checkpoint"),
    (MAGIC[:7], r"not a torch checkpoint.*truncated"),
    (np.random.default_rng(0).bytes(4096), r"not a torch checkpoint"),
])
def test_a_file_without_torchs_magic_number_is_refused(tmp_path, content, match):
    _refused(_write(tmp_path / "magic.pth", content), match)


def test_torchs_old_tar_format_is_refused_saying_so(tmp_path):
    path = str(tmp_path / "old.pth")
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("sys_info")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    _refused(path, r"torch < 0.4's tar format, which is not read here")


@pytest.mark.parametrize("section,value,match", [
    (1, 1000, r"protocol version 1000, not torch's 1001"),
    (1, 1001.0, r"protocol version 1001.0"),
    (2, {**SYS_INFO, "little_endian": False}, r"saved big-endian"),
    (2, {**SYS_INFO, "type_sizes": {"short": 2, "int": 8, "long": 4}}, r"sys_info .*'int': 8"),
    (2, {**SYS_INFO, "type_sizes": {"short": 2, "int": 4, "long": 8}}, r"sys_info"),
    (2, {**SYS_INFO, "type_sizes": {"short": 2, "int": 4}}, r"sys_info"),
    (2, {**SYS_INFO, "type_sizes": {"short": 2, "int": 4, "long": 4, "size_t": 8}}, r"sys_info"),
    (2, {**SYS_INFO, "type_sizes": {"short": 2, "int": 4, "long": True}}, r"sys_info"),
    (2, {**SYS_INFO, "protocol_version": 1000}, r"sys_info"),
    (2, {**SYS_INFO, "extra": 1}, r"sys_info"),
    (2, {"little_endian": True}, r"sys_info"),
    (2, [SYS_INFO], r"sys_info \[\{"),
])
def test_a_header_unlike_torchs_is_refused(tmp_path, section, value, match):
    pickles, rest = _split(_legacy_bytes({"w": torch.ones(3)}))
    pickles[section] = pickle.dumps(value, protocol=2)
    _refused(_write(tmp_path / "head.pth", b"".join(pickles) + rest), match)


def test_a_file_cut_anywhere_is_refused(tmp_path):
    """Cut inside each pickle, inside a storage's count and inside its bytes, and
    right after the key list: each a one-line refusal saying it is truncated."""
    data = _legacy_bytes({"a": torch.arange(6.0), "b": torch.arange(4, dtype=torch.int64)})
    pickles, rest = _split(data)
    ends = np.cumsum([len(p) for p in pickles])
    cuts = [0, 1, 5, ends[0] + 2, ends[1] + 10, ends[2] + 3, ends[3] - 1, ends[3] + 5,
            ends[4], ends[4] + 3, ends[4] + 8 + 10, len(data) - 12, len(data) - 1]
    for cut in cuts:
        path = _write(tmp_path / f"cut{cut}.pth", data[:cut])
        _refused(path, r"truncated")


def _two_storages(tmp_path, name="two.pth", **kwargs) -> str:
    pkl = obj_pickle({"a": tensor(storage("10", 12), 0, (12,), (1,)),
                      "b": tensor(storage("20", 3, "LongStorage"), 0, (3,), (1,))})
    storages = {"10": (12, FLOATS.tobytes()), "20": (3, np.arange(3).tobytes())}
    return legacy(tmp_path / name, pkl, {**storages, **kwargs.pop("storages", {})}, **kwargs)


def test_two_storages_read_in_the_key_lists_order(tmp_path):
    ours = pth.load_state_dict(_two_storages(tmp_path))
    np.testing.assert_array_equal(ours["a"], FLOATS)
    np.testing.assert_array_equal(ours["b"], [0, 1, 2])


@pytest.mark.parametrize("count,match", [
    (11, r"storage '10' \(at byte \d+\) counts 11 elements, but the pickle declares 12"),
    (13, r"counts 13 elements, but the pickle declares 12"),
    (-1, r"counts -1 elements"),
    (48, r"counts 48 elements"),  # the bytes, not the elements
])
def test_a_storage_count_unlike_its_persistent_id_is_refused(tmp_path, count, match):
    _refused(_two_storages(tmp_path, storages={"10": (count, FLOATS.tobytes())}), match)


@pytest.mark.parametrize("keys,match", [
    (["10"], r"lacks storage '20' in its storage key list, which its pickle uses"),
    ([], r"lacks storage '10'"),
    (["10", "20", "10"], r"lists storage '10' twice"),
    (["10", "20", "30"], r"lists storage '30' in its storage key list, but its pickle "
                         r"never uses it"),
    (("10", "20"), r"storage key list \('10', '20'\), not a list of strings"),
    (["10", 20], r"not a list of strings"),
])
def test_a_key_list_unlike_the_pickles_storages_is_refused(tmp_path, keys, match):
    _refused(_two_storages(tmp_path, keys=keys), match)


@pytest.mark.parametrize("trailing", [b"\0", b"x" * 1000, pickle.dumps({"w": 1}, protocol=2)])
def test_trailing_bytes_are_refused(tmp_path, trailing):
    _refused(_two_storages(tmp_path, trailing=trailing),
             rf"has {len(trailing)} bytes after its last storage")


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("numel", [10 ** 9, 1 << 40, 1 << 70])
@pytest.mark.parametrize("max_bytes", [None, 1 << 80])
def test_a_numel_beyond_the_file_is_refused_before_allocating(tmp_path, numel, max_bytes):
    """A ~400-byte file declaring a storage of 4 GB and more: refused from its id, even
    when the caller allows any size, before anything is allocated."""
    path = legacy(tmp_path / "huge.pth", obj_pickle({"w": tensor(storage("0", numel), 0,
                                                                 (1,), (1,))}),
                  {"0": (numel if numel < 1 << 63 else 0, FLOATS.tobytes())})
    assert os.path.getsize(path) < 1000
    assert _peak(lambda: _refused(path, r"storage '0' declares \d+ FloatStorage elements "
                                        r"\(\d+ bytes\), more than the \d+ bytes the file "
                                        r"has left", max_bytes=max_bytes)) < 2 * MiB


@pytest.mark.parametrize("offset,size,stride,match", [
    (10, (4,), (1,), r"reaches element 13, outside its storage of 12"),
    (0, (4,), (1 << 62,), r"outside its storage"),
    (12, (), (), r"outside its storage"),
    (-1, (4,), (1,), r"negative"),
    (0, (3,), (-1,), r"negative"),
])
def test_a_tensor_outside_its_storage_is_refused(tmp_path, offset, size, stride, match):
    path = legacy(tmp_path / "geom.pth",
                  obj_pickle({"w": tensor(storage("0", 12), offset, size, stride)}),
                  {"0": (12, FLOATS.tobytes())})
    _refused(path, r"a tensor on storage '0' .*" + match)


def test_stride_zero_cannot_blow_a_small_file_up(tmp_path):
    path = legacy(tmp_path / "s0.pth", obj_pickle({"w": tensor(storage("0", 1), 0,
                                                               (10 ** 8,), (0,))}),
                  {"0": (1, b"\0" * 4)})
    assert _peak(lambda: _refused(path, r"over the limit")) < 4 * MiB


def test_the_budget_counts_storages_and_tensors(tmp_path):
    """1000 floats (4000 bytes) and a tensor over them (4000): 7999 refuses, 8000 reads."""
    data = np.arange(1000, dtype=np.float32)
    path = legacy(tmp_path / "cap.pth", obj_pickle({"w": tensor(storage("0", 1000), 0,
                                                                (1000,), (1,))}),
                  {"0": (1000, data.tobytes())})
    _refused(path, r"over the limit of 7999", max_bytes=7999)
    np.testing.assert_array_equal(pth.load_state_dict(path, max_bytes=8000)["w"], data)


def test_pickles_longer_than_allowed_are_refused(tmp_path):
    """The pickles are read in bounded pieces, never past the file's pickle limit (here
    3000 bytes; a 5000-character key in the object pickle), which read without it."""
    pkl = obj_pickle({"x" * 5000: tensor(storage("0", 12), 0, (3,), (1,))})
    path = legacy(tmp_path / "long.pth", pkl, {"0": (12, FLOATS.tobytes())})
    _refused(path, r"has pickles longer than the 3000 bytes allowed them \(reading its "
                   r"object pickle at byte 137\)", max_bytes=3000)
    np.testing.assert_array_equal(pth.load_state_dict(path)["x" * 5000], FLOATS[:3])


def test_a_storage_view_is_refused_saying_so(tmp_path):
    """view_metadata (key, offset, numel): written only by torch < 1.0."""
    path = legacy(tmp_path / "view.pth",
                  obj_pickle({"w": tensor(storage("0", 12, view=("1", 2, 4)), 0, (4,), (1,))}),
                  {"0": (12, FLOATS.tobytes())})
    _refused(path, r"holds a storage view \('1', 2, 4\) \(of storage '0'\), which only "
                   r"torch < 1.0 wrote and which this reader does not support")


@pytest.mark.parametrize("ops,error,match", [
    (storage("0", 12, fields=_v("storage") + _global("torch", "FloatStorage") + _v("0")
             + _v("cpu") + _v(12)), pth.UnsafeCheckpoint, r"unexpected reference"),
    (storage("0", 12, fields=_v("module") + _v(None) + _v(None) + _v(None)),
     pth.UnsafeCheckpoint, r"unexpected reference \('module'"),
    (storage("0", 12, fields=_v("storage") + _global("torch", "FloatStorage") + _v("0")
             + _v("cpu") + _v(12.0) + _v(None)), pth.UnreadableCheckpoint, r"declares 12.0"),
    (tensor(storage("0", 12), 0, (1,), (1,)) + b"0" + tensor(storage("0", 6, "LongStorage"),
                                                              0, (1,), (1,)),
     pth.UnreadableCheckpoint, r"storage '0' is declared as 12 FloatStorage elements and "
                               r"as 6 LongStorage ones"),
    (storage("0", 12), pth.UnreadableCheckpoint, r"does not hold a state dict"),
], ids=["zip-id", "module", "float-numel", "two-types", "bare-storage"])
def test_odd_storage_ids_are_refused(tmp_path, ops, error, match):
    path = legacy(tmp_path / "pid.pth", obj_pickle({"w": ops}), {"0": (12, FLOATS.tobytes())})
    _refused(path, match, error=error)


# --- no code runs ------------------------------------------------------------------------

class _Touch:
    """Unpickled, it would create the file at `path`."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("section", [0, 1, 2, 3, 4])
def test_a_global_such_as_os_system_is_refused_and_nothing_runs(tmp_path, section):
    """In any of the five pickles: refused as unsafe, and the command never ran (the
    same pickle does run it under a plain pickle.loads)."""
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"w": _Touch(str(marker))}, protocol=2)
    pickle.loads(evil)
    assert marker.exists()  # the payload works ...
    marker.unlink()
    pickles, rest = _split(_legacy_bytes({"w": torch.ones(3)}))
    pickles[section] = evil
    path = _write(tmp_path / "evil.pth", b"".join(pickles) + rest)
    _refused(path, r"asks to load '(posix|os)'\.'system' in .*refused",
             error=pth.UnsafeCheckpoint)
    assert not marker.exists()  # ... and here never ran


def test_numpys_reconstruct_is_refused(tmp_path):
    pkl = pickle.dumps({"w": np.arange(3, dtype=np.float32)}, protocol=2)
    assert b"_reconstruct" in pkl
    path = legacy(tmp_path / "np.pth", pkl, {})
    _refused(path, r"asks to load 'numpy\..*'\.'_reconstruct' in its object pickle .*refused",
             error=pth.UnsafeCheckpoint)


def test_a_pickle_setting_state_on_a_tensor_is_refused(tmp_path):
    ops = tensor(storage("0", 12), 0, (3,), (1,)) + _v((1, (2,), None, False, "")) + b"b"
    path = legacy(tmp_path / "build.pth", obj_pickle({"w": ops}), {"0": (12, FLOATS.tobytes())})
    _refused(path, r"sets state", error=pth.UnsafeCheckpoint)


# --- the pickle: scanned, and bounded, before anything is built -------------------------

def _dag(depth: int) -> list:
    x = []
    for _ in range(depth):
        x = [x, x]
    return x


NESTED = {  # case: (object pickle, what the refusal says)
    "dag_state": (pickle.dumps(_dag(60), protocol=2),
                  r"does not hold a state dict of tensors \(got \[\[\[\[\.\.\.\], "),
    "dag_pid": (b"\x80\x02}(" + _v("w") + pickle.dumps(_dag(60), protocol=2)[2:-1] + b"Qu.",
                r"holds an unexpected reference \[\[\[\["),
    "deep_list": (b"\x80\x02" + b"(" * 300_000 + b"]" + b"l" * 300_000 + b".",
                  r"its object pickle \(at byte \d+\) nests containers more than 64 deep"),
    "deep_tuple_key": (b"\x80\x02}" + b")" + b"\x85" * 1_000_000 + b"K\x01s.",
                       r"its object pickle \(at byte \d+\) nests containers more than 64"),
    "many_lists": (b"\x80\x02" + b"]" * (MiB - 3) + b".", r"would make over \d+ bytes of "
                                                          r"pickle objects"),
    "memo_index": (b"\x80\x02}r" + struct.pack("<I", 1 << 24) + b".",
                   r"would make over \d+ bytes of pickle objects"),
    "memo_unwritten": (b"\x80\x02h\x05.", r"reads memo 5, which it never wrote"),
}


@pytest.mark.parametrize("case", sorted(NESTED))
def test_nesting_and_memo_tricks_are_refused_in_one_line(tmp_path, case):
    """The zip reader's crafted pickles as a legacy file's object pickle (and so its
    storages' would-be room); in a child process, so that a hang or a crash fails
    this test instead of the suite."""
    pkl, says = NESTED[case]
    assert_refused_in_a_child(legacy(tmp_path / f"{case}.pth", pkl, {}), case, says)


def test_the_key_list_and_sys_info_are_scanned_too(tmp_path):
    """Memo tricks in the small pickles: a memo index of 2**24 in the key list, and a
    list 300,000 deep as sys_info."""
    pickles, rest = _split(_legacy_bytes({"w": torch.ones(3)}))
    for section, pkl in [(4, b"\x80\x02]r" + struct.pack("<I", 1 << 24) + b"."),
                         (2, b"\x80\x02" + b"(" * 300_000 + b"]" + b"l" * 300_000 + b".")]:
        edited = list(pickles)
        edited[section] = pkl
        path = _write(tmp_path / f"small{section}.pth", b"".join(edited) + rest)
        _refused(path, r"(would make over|nests containers more than 64)")
