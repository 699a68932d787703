"""torch's `.pth` checkpoints read with numpy alone: no torch import, no arbitrary code.

Why by hand: the ImageNet weights come as torchvision `.pth` files, and torch is a
test-only dependency of jaxgenre (training, evaluation and predict must run without
it). No maintained package reads torch's format without torch itself.

The format (torch >= 1.6, `torch.save`'s default): a zip archive with one top folder
holding `data.pkl` (a pickle of the state dict), `data/<key>` (each storage's raw bytes)
and `byteorder`. The pickle names tensors by `torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)` calls whose storages are persistent ids `('storage',
torch.<Type>Storage, key, location, numel)`.

The unpickler accepts exactly what `torch.load(weights_only=True)` needs for a state
dict — tensor and parameter rebuilds, storage types, `OrderedDict` and pickle's own
plain containers — and refuses any other global with `UnsafeCheckpoint`, before
anything is called: a crafted file cannot run code.
"""

from __future__ import annotations

import collections
import pickle
import re
import zipfile
from typing import Any, Dict

import ml_dtypes
import numpy as np

from jaxgenre.errors import UserError

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpoint(UserError):
    """A `.pth` whose pickle asks for something other than tensors and containers."""


class UnreadableCheckpoint(UserError):
    """A file that is not a readable zip-format torch checkpoint."""


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor_v2(storage: np.ndarray, offset: int, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> np.ndarray:
    """A tensor as numpy: `size` elements at `offset` with `stride` (in elements)."""
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if size and (offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.size):
        raise UnreadableCheckpoint("a tensor reaches past the end of its storage")
    if not size:
        return np.array(storage[offset])
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=[s * storage.itemsize for s in stride],
        writeable=False)
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, requires_grad=False, backward_hooks=None):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(file)
        self.archive, self.prefix, self.path = archive, prefix, path
        self.storages: Dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpoint(
            f"'{self.path}' asks to load {module}.{name}, which a weights file never needs; "
            f"refused (only tensors and containers are read). Use the original file from "
            f"download.pytorch.org")

    def persistent_load(self, pid) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and re.fullmatch(r"\w+", str(pid[2]))):
            raise UnsafeCheckpoint(f"'{self.path}' holds an unexpected reference {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if key not in self.storages:
            try:
                raw = self.archive.read(f"{self.prefix}data/{key}")
            except KeyError:
                raise UnreadableCheckpoint(f"'{self.path}' lacks storage {key}") from None
            self.storages[key] = np.frombuffer(raw, dtype=storage_type.dtype)
        return self.storages[key]


def load_state_dict(path: str) -> Dict[str, np.ndarray]:
    """`torch.load(path, weights_only=True)` for a state dict, as numpy arrays (a
    `collections.OrderedDict`, torch's order kept)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UnreadableCheckpoint(
            f"'{path}' is not a readable torchvision checkpoint (not a zip-format torch "
            f"file: {type(e).__name__}: {e}; a truncated download, or torch < 1.6's "
            f"format)") from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise UnreadableCheckpoint(f"'{path}' has {len(pickles)} data.pkl files, not 1: "
                                       f"not a torch.save checkpoint")
        prefix = pickles[0][:-len("data.pkl")]
        byteorder = (archive.read(prefix + "byteorder").decode().strip()
                     if prefix + "byteorder" in archive.namelist() else "little")
        if byteorder != "little":
            raise UnreadableCheckpoint(f"'{path}' was saved big-endian; not supported")
        with archive.open(pickles[0]) as f:
            try:
                state = _Unpickler(f, archive, prefix, path).load()
            except (UnsafeCheckpoint, UnreadableCheckpoint):
                raise
            except Exception as e:  # a damaged pickle
                raise UnreadableCheckpoint(
                    f"'{path}' cannot be unpickled ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()):
        raise UnreadableCheckpoint(f"'{path}' does not hold a state dict of tensors")
    return state
