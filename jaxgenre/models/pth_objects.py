"""What the `.pth` unpickler (`models.pth`) builds in place of torch's objects: storage
types, storages, tensors, the allowed functions and `OrderedDict`. Each refuses
pickle's BUILD (`__setstate__`), which a crafted pickle could otherwise aim at them: it
would set a storage type's dtype, call `ndarray.__setstate__` on a tensor, write a
function's `__dict__` or `__defaults__` (changing every later load in the process), or
copy one memoized dict into many OrderedDicts.
"""

from __future__ import annotations

import collections

import ml_dtypes
import numpy as np

from jaxgenre.models.pth_archive import Refusal, short

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


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
    """One `data/<key>` member as a read-only 1-D array of `numel` elements."""
    __slots__ = ("member", "type", "array")

    def __init__(self, member: str, storage_type: StorageType, array: np.ndarray):
        self.member, self.type, self.array = member, storage_type, array

    def __repr__(self) -> str:
        return f"<storage '{self.member}'>"


class Tensor(Sealed):
    """A rebuilt tensor (its own contiguous copy), unwrapped when the load is done."""
    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array

    def __repr__(self) -> str:
        return f"<tensor {self.array.dtype}{list(self.array.shape)}>"


def rebuild_parameter(data, requires_grad=False, backward_hooks=None) -> Tensor:
    """`torch._utils._rebuild_parameter`: the tensor itself (numpy has no gradients)."""
    if not isinstance(data, Tensor):
        raise Refusal(f"makes a parameter of {short(data)}, not of a tensor")
    return data
