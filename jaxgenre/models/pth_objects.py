"""What the `.pth` unpicklers (`models.pth` for the zip format, `models.pth_legacy` for
torch < 1.6's) may call and what they build in place of torch's objects: storage types,
storages, tensors, the allowed functions and `OrderedDict`, and the unpickler that
allows nothing else.

Each object refuses pickle's BUILD (`__setstate__`), which a crafted pickle could
otherwise aim at it: it would set a storage type's dtype, call `ndarray.__setstate__` on
a tensor, write a function's `__dict__` or `__defaults__` (changing every later load in
the process), or copy one memoized dict into many OrderedDicts. A tensor's geometry is
checked against its storage's declared element count before numpy touches a buffer
(`rebuild_tensor`).
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import re
from typing import Any, Dict, Optional, Tuple

import ml_dtypes
import numpy as np

from jaxgenre.models.pth_archive import Budget, Refusal, short

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
MAX_DIMS = 64  # numpy's limit


class Sealed:
    """Refuses pickle's BUILD (`__setstate__`) as unsafe: no torch.save file has it."""
    __slots__ = ()

    def __setstate__(self, state) -> None:
        raise Refusal(f"sets state on a {type(self).__name__.strip('_').lower()}, which "
                      f"torch.save never writes; refused", unsafe=True)


class StorageType(Sealed):
    """`torch.<Type>Storage`, as a persistent id names it: its numpy dtype."""
    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(STORAGE_DTYPES[name])

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class Function(Sealed):
    """An allowed global: callable, and sealed (BUILD on a bare function would write
    its `__dict__` or `__defaults__`, changing every later load in the process)."""
    __slots__ = ("name", "function")

    def __init__(self, name: str, function):
        self.name, self.function = name, function

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.name}>"


class StateDict(collections.OrderedDict):
    """torch's `OrderedDict`; BUILD's state (a state dict's `_metadata`: its modules'
    versions, which jaxgenre does not use) is dropped, not copied: a pickle BUILDing one
    memoized dict onto many fresh ones would copy it each time."""
    __slots__ = ()

    def __setstate__(self, state) -> None:
        if type(state) is not dict:
            raise Refusal(f"sets {short(state)} as an OrderedDict's state, which "
                          f"torch.save never writes")


StateDict.__name__ = StateDict.__qualname__ = "OrderedDict"  # for messages


def ordered_dict(*args, **kwargs) -> StateDict:
    """`OrderedDict()`: torch.save writes it empty, then its items (each counted by
    `pth_scan`); `OrderedDict(items)` would copy what the memo holds, once a call."""
    if args or kwargs:
        raise Refusal(f"builds an OrderedDict from {short(args or kwargs)}, which "
                      f"torch.save never writes (an empty one, then its items)")
    return StateDict()


class Storage(Sealed):
    """A storage of `numel` elements of `type`, named in messages by `name` (say
    "member 'archive/data/0'"): its bytes as a read-only 1-D array, `array`, which the
    legacy reader fills only after the pickle (None until then)."""
    __slots__ = ("name", "type", "numel", "array")

    def __init__(self, name: str, storage_type: StorageType, numel: int,
                 array: Optional[np.ndarray] = None):
        self.name, self.type, self.numel, self.array = name, storage_type, numel, array

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Tensor(Sealed):
    """A rebuilt tensor: its checked geometry on a storage, then (`fill`, as soon as the
    storage holds its bytes) its own contiguous copy, `array`."""
    __slots__ = ("array", "storage", "geometry")

    def __init__(self, storage: Storage, geometry: Tuple[int, tuple, tuple],
                 array: Optional[np.ndarray] = None):
        self.storage, self.geometry, self.array = storage, geometry, array

    def fill(self) -> None:
        """Copies the elements out of the storage; `rebuild_tensor` has checked that
        each lies inside it (then `as_strided` is safe: offset <= last < numel, and each
        step (n-1)*s <= last)."""
        offset, size, stride = self.geometry
        array, itemsize = self.storage.array, self.storage.type.dtype.itemsize
        if array is None or array.size != self.storage.numel:  # the readers' invariant
            raise RuntimeError(f"{self.storage.name} is not filled to its numel")
        view = np.lib.stride_tricks.as_strided(
            array[offset:], shape=size, writeable=False,
            strides=[s * itemsize if n > 1 else 0 for n, s in zip(size, stride)])
        self.array, self.storage = np.array(view), None

    def __repr__(self) -> str:
        dtype = self.array.dtype if self.array is not None else self.storage.type.dtype
        return f"<tensor {dtype}{list(self.geometry[1])}>"


def rebuild_parameter(data, requires_grad=False, backward_hooks=None) -> Tensor:
    """`torch._utils._rebuild_parameter`: the tensor itself (numpy has no gradients)."""
    if not isinstance(data, Tensor):
        raise Refusal(f"makes a parameter of {short(data)}, not of a tensor")
    return data


def _int_tuple(value, what: str, where: str) -> tuple:
    if type(value) is not tuple:
        raise Refusal(f"{where} has {what} {short(value)}, not a tuple of ints")
    if len(value) > MAX_DIMS:
        raise Refusal(f"{where} has {len(value)} dimensions (at most {MAX_DIMS})")
    if not all(type(n) is int for n in value):
        raise Refusal(f"{where} has {what} {short(value)}, not a tuple of ints")
    return value


def rebuild_tensor(storage, offset, size, stride, budget: Budget) -> Tensor:
    """`size` elements of `storage` from `offset` with `stride` (in elements), each
    checked to lie inside its declared `numel` and charged to `budget` before anything
    is allocated; copied out now if the storage holds its bytes, else by `fill`."""
    if not isinstance(storage, Storage):
        raise Refusal(f"rebuilds a tensor on {short(storage)}, which is not one of the "
                      f"file's storages")
    where = f"a tensor on {storage.name}"
    if type(offset) is not int:
        raise Refusal(f"{where} has offset {short(offset)}, not an int")
    size, stride = _int_tuple(size, "size", where), _int_tuple(stride, "stride", where)
    if len(size) != len(stride):
        raise Refusal(f"{where} has {len(size)} sizes but {len(stride)} strides")
    if offset < 0 or min(size + stride, default=0) < 0:
        raise Refusal(f"{where} has a negative offset, size or stride (offset {offset}, "
                      f"size {short(size)}, stride {short(stride)})")
    numel = math.prod(size)
    budget.spend(numel * storage.type.dtype.itemsize, where)
    if numel == 0:  # addresses nothing: torch accepts any offset and stride
        try:
            return Tensor(storage, (offset, size, stride), np.empty(size, storage.type.dtype))
        except ValueError:
            raise Refusal(f"{where} has size {short(size)}, too large for an array "
                          f"even when empty") from None
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.numel:
        raise Refusal(f"{where} reaches element {last}, outside its storage of "
                      f"{storage.numel} elements")
    tensor = Tensor(storage, (offset, size, stride))
    if storage.array is not None:
        tensor.fill()
    return tensor


class Unpickler(pickle.Unpickler):
    """pickle's unpickler on `data` (already scanned by `pth_scan`), held to what a
    weights file needs: with `tensors`, the tensor and parameter rebuilds, storage types
    and `OrderedDict()`; without, no global at all. Any other global is refused as
    unsafe before anything is called. Subclasses turn persistent ids into storages
    (`new_storage`); `where` names the pickle in messages."""

    PID_LENGTH = 5  # ('storage', type, key, location, numel): the zip format's

    def __init__(self, data, budget: Budget, where: str, tensors: bool = True):
        super().__init__(io.BytesIO(data))
        self.budget, self.where = budget, where
        self.storages: Dict[str, Storage] = {}
        functions = {
            ("collections", "OrderedDict"): ordered_dict,
            ("torch._utils", "_rebuild_tensor_v2"): self.rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
        } if tensors else {}
        self.allowed = {key: Function(".".join(key), f) for key, f in functions.items()}
        self.tensors = tensors

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        if self.tensors and module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise Refusal(
            f"asks to load {short(module, 60)}.{short(name, 60)} in {self.where}, which a "
            f"weights file never needs; refused (only tensors and containers are read). "
            f"Use the original checkpoint from its publisher", unsafe=True)

    def persistent_load(self, pid) -> Storage:
        """A storage id: checked, and one `Storage` per key (declared alike each time)."""
        if not (self.tensors and type(pid) is tuple and len(pid) == self.PID_LENGTH
                and pid[0] == "storage" and isinstance(pid[1], StorageType)
                and type(pid[2]) is str and re.fullmatch(r"\w{1,100}", pid[2])
                and type(pid[3]) is str):
            raise Refusal(f"holds an unexpected reference {short(pid)}", unsafe=True)
        storage_type, key, numel = pid[1], pid[2], pid[4]
        name = self.storage_name(key)
        if type(numel) is not int or numel < 0:
            raise Refusal(f"{name} declares {short(numel)} {storage_type.name} "
                          f"elements, not a count")
        known = self.storages.get(key)
        if known is not None:
            if known.type.name != storage_type.name or known.numel != numel:
                raise Refusal(f"{name} is declared as {known.numel} {known.type.name} "
                              f"elements and as {numel} {storage_type.name} ones")
            return known
        self.storages[key] = self.new_storage(name, storage_type, key, numel)
        return self.storages[key]

    def storage_name(self, key: str) -> str:
        return f"storage '{key}'"

    def new_storage(self, name: str, storage_type: StorageType, key: str,
                    numel: int) -> Storage:
        raise NotImplementedError

    def rebuild_tensor_v2(self, storage, offset, size, stride, requires_grad=False,
                          backward_hooks=None, metadata=None) -> Tensor:
        """`torch._utils._rebuild_tensor_v2`: `rebuild_tensor` (numpy has no grads)."""
        return rebuild_tensor(storage, offset, size, stride, self.budget)

    def read(self) -> Any:
        """The unpickled object; a damaged pickle is a `Refusal`."""
        try:
            return self.load()
        except Refusal:
            raise
        except Exception as e:  # a damaged pickle (its arguments may be the pickle's values)
            raise Refusal(f"{self.where} cannot be unpickled ({type(e).__name__}: "
                          f"{short(e.args[0] if len(e.args) == 1 else e.args, 200)})") \
                from None
