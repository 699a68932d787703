"""torch's `.pth` checkpoints read with numpy alone: no torch import, no arbitrary code,
and no tensor outside its storage.

Why by hand: the ImageNet weights come as torchvision `.pth` files, and torch is a
test-only dependency of jaxgenre (training, evaluation and predict must run without
it). No maintained package reads torch's format without torch itself.

The format (torch >= 1.6, `torch.save`'s default): a zip archive with one top folder
holding `data.pkl` (a pickle of the state dict), `data/<key>` (each storage's raw bytes)
and `byteorder`. The pickle names tensors by `torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, ...)` calls whose storages are persistent ids `('storage',
torch.<Type>Storage, key, location, numel)`.

The unpickler accepts exactly what `torch.load(weights_only=True)` needs for a state
dict — tensor and parameter rebuilds, storage types, `OrderedDict()` and pickle's own
plain containers — and refuses any other global with `UnsafeCheckpoint`, before
anything is called: a crafted file cannot run code, nor set attributes on what it may
call (pickle's BUILD). Every file, pinned or not, is then held to what torch.save
writes, so a crafted one cannot read memory or exhaust it:
- data.pkl inflates to at most the file's size (1 MiB at least;
  `pth_archive.pickle_limit`), and is scanned opcode by opcode before it is unpickled
  (`pth_scan`): the objects it would make stay within the file's limit too (counted
  apart from storages and tensors), nested at most `pth_scan.MAX_DEPTH` deep, so that
  no memo trick, deep nesting or cycle reaches the unpickler; what it builds is sealed
  (`pth_objects`), and messages show a bounded part of a value (`pth_archive.short`);
- a storage is one of the archive's own members (`data/<key>`), holding exactly the
  `numel * itemsize` bytes its id declares, under one storage type;
- a tensor's storage is such a storage (not another tensor, not a list), its offset an
  int, its size and stride tuples of ints of one length (at most 64), none negative,
  and every element it addresses inside the storage (then numpy's `as_strided` is
  safe: its last byte is checked to lie in the buffer);
- the bytes a file materialises — storages, then tensors (a stride-0 view counts at
  its full size) — stay within `pth_archive.default_limit` of the file's size, checked
  before anything is allocated, and no zip member inflates past its declared size
  (`pth_archive.read_member`).
Anything else is refused in one line naming the file and the member.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import re
import zipfile
from typing import Any, Dict, Optional

import numpy as np

from jaxgenre.errors import UserError
from jaxgenre.models import pth_archive, pth_scan
from jaxgenre.models.pth_archive import Refusal, short
from jaxgenre.models.pth_objects import (STORAGE_DTYPES, Function, Storage, StorageType,
                                         Tensor, ordered_dict, rebuild_parameter)

_MAX_DIMS = 64  # numpy's limit
_FIX = "not a file torch.save writes (crafted or damaged): use the original checkpoint"


class UnsafeCheckpoint(UserError):
    """A `.pth` whose pickle asks for something other than tensors and containers."""


class UnreadableCheckpoint(UserError):
    """A file that is not a readable zip-format torch checkpoint."""


def _int_tuple(value, what: str, where: str) -> tuple:
    if type(value) is not tuple:
        raise Refusal(f"{where} has {what} {short(value)}, not a tuple of ints")
    if len(value) > _MAX_DIMS:
        raise Refusal(f"{where} has {len(value)} dimensions (at most {_MAX_DIMS})")
    if not all(type(n) is int for n in value):
        raise Refusal(f"{where} has {what} {short(value)}, not a tuple of ints")
    return value


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, archive: zipfile.ZipFile, prefix: str,
                 budget: pth_archive.Budget):
        super().__init__(file)
        self.archive, self.prefix, self.budget = archive, prefix, budget
        self.storages: Dict[str, Storage] = {}
        self.allowed = {key: Function(".".join(key), function) for key, function in {
            ("collections", "OrderedDict"): ordered_dict,
            ("torch._utils", "_rebuild_tensor_v2"): self.rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
        }.items()}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        raise Refusal(
            f"asks to load {short(module, 60)}.{short(name, 60)}, which a weights file "
            f"never needs; refused (only tensors and containers are read). Use the "
            f"original file from download.pytorch.org", unsafe=True)

    def persistent_load(self, pid) -> Storage:
        if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and type(pid[2]) is str
                and re.fullmatch(r"\w{1,100}", pid[2]) and type(pid[3]) is str):
            raise Refusal(f"holds an unexpected reference {short(pid)}", unsafe=True)
        storage_type, key, numel = pid[1], pid[2], pid[4]
        member = f"{self.prefix}data/{key}"
        if type(numel) is not int or numel < 0:
            raise Refusal(f"member '{member}' declares {short(numel)} {storage_type.name} "
                          f"elements, not a count")
        known = self.storages.get(key)
        if known is not None:
            if known.type.name != storage_type.name or known.array.size != numel:
                raise Refusal(
                    f"member '{member}' is declared as {known.array.size} "
                    f"{known.type.name} elements and as {numel} {storage_type.name} ones")
            return known
        try:
            info = self.archive.getinfo(member)
        except KeyError:
            raise Refusal(f"lacks storage {key} ('{member}')") from None
        nbytes = numel * storage_type.dtype.itemsize
        if info.file_size != nbytes:
            raise Refusal(f"member '{member}' declares {numel} {storage_type.name} elements "
                          f"({nbytes} bytes) but holds {info.file_size}")
        self.budget.spend(nbytes, f"member '{member}'")
        array = np.frombuffer(pth_archive.read_member(self.archive, member, nbytes),
                              dtype=storage_type.dtype)
        array.flags.writeable = False
        self.storages[key] = Storage(member, storage_type, array)
        return self.storages[key]

    def rebuild_tensor_v2(self, storage, offset, size, stride, requires_grad=False,
                          backward_hooks=None, metadata=None) -> Tensor:
        """`size` elements of `storage` from `offset` with `stride` (in elements), each
        checked to lie inside it before numpy touches the buffer, as a contiguous copy."""
        if not isinstance(storage, Storage):
            raise Refusal(f"rebuilds a tensor on {short(storage)}, which is not one of the "
                          f"archive's storages")
        where = f"a tensor on member '{storage.member}'"
        if type(offset) is not int:
            raise Refusal(f"{where} has offset {short(offset)}, not an int")
        size, stride = _int_tuple(size, "size", where), _int_tuple(stride, "stride", where)
        if len(size) != len(stride):
            raise Refusal(f"{where} has {len(size)} sizes but {len(stride)} strides")
        if offset < 0 or min(size + stride, default=0) < 0:
            raise Refusal(f"{where} has a negative offset, size or stride (offset {offset}, "
                          f"size {short(size)}, stride {short(stride)})")
        itemsize, numel = storage.type.dtype.itemsize, math.prod(size)
        self.budget.spend(numel * itemsize, where)
        if numel == 0:  # addresses nothing: torch accepts any offset and stride
            try:
                return Tensor(np.empty(size, storage.type.dtype))
            except ValueError:
                raise Refusal(f"{where} has size {short(size)}, too large for an array "
                              f"even when empty") from None
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.array.size:
            raise Refusal(f"{where} reaches element {last}, outside its storage of "
                          f"{storage.array.size} elements")
        # In bounds: offset <= last < storage size, each step (n-1)*s <= last.
        view = np.lib.stride_tricks.as_strided(
            storage.array[offset:], shape=size, writeable=False,
            strides=[s * itemsize if n > 1 else 0 for n, s in zip(size, stride)])
        return Tensor(np.array(view))


def _read(archive: zipfile.ZipFile, budget: pth_archive.Budget, file_size: int) -> Any:
    """The unpickled top-level object of `archive` (a file of `file_size` bytes), its
    pickle scanned first (`pth_scan`)."""
    names = pth_archive.check_names(archive)
    pickles = [n for n in names if n.endswith("data.pkl")]
    if len(pickles) != 1:
        raise Refusal(f"has {len(pickles)} data.pkl files, not 1: not a torch.save "
                      f"checkpoint")
    prefix = pickles[0][:-len("data.pkl")]
    if prefix + "byteorder" in names:
        byteorder = pth_archive.read_member(archive, prefix + "byteorder", 16)
        if byteorder.decode("ascii", "replace").strip() != "little":
            raise Refusal("was saved big-endian; not supported")
    data = pth_archive.read_member(archive, pickles[0],
                                   pth_archive.pickle_limit(file_size, budget.limit))
    pth_scan.scan(data, budget.limit, pickles[0])
    unpickler = _Unpickler(io.BytesIO(data), archive, prefix, budget)
    try:
        return unpickler.load()
    except Refusal:
        raise
    except Exception as e:  # a damaged pickle (its arguments may be the pickle's values)
        raise Refusal(f"cannot be unpickled ({type(e).__name__}: "
                      f"{short(e.args[0] if len(e.args) == 1 else e.args, 200)})") from None


def load_state_dict(path: str, *, max_bytes: Optional[int] = None) -> Dict[str, np.ndarray]:
    """`torch.load(path, weights_only=True)` for a state dict, as numpy arrays (a
    `collections.OrderedDict`, torch's order kept). `max_bytes` bounds what the file
    may materialise (storages and tensors; and, counted apart, the objects its pickle
    makes); by default `pth_archive.default_limit` of its size. A file torch.save would not write raises `UnreadableCheckpoint` (or
    `UnsafeCheckpoint`) naming it."""
    try:
        file_size = os.path.getsize(path)
        limit = pth_archive.default_limit(file_size) if max_bytes is None else max_bytes
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise UnreadableCheckpoint(
            f"'{path}' is not a readable torchvision checkpoint (not a zip-format torch "
            f"file: {type(e).__name__}: {e}; a truncated download, or torch < 1.6's "
            f"format)") from None
    with archive:
        try:
            state = _read(archive, pth_archive.Budget(limit), file_size)
        except Refusal as e:
            if e.unsafe:
                raise UnsafeCheckpoint(f"'{path}' {e}") from None
            raise UnreadableCheckpoint(f"'{path}' {e}; {_FIX}") from None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise UnreadableCheckpoint(f"'{path}' does not hold a state dict of tensors "
                                   f"(got {short(state)}); {_FIX}")
    return collections.OrderedDict((k, v.array) for k, v in state.items())
