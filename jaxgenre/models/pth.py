"""torch's `.pth` checkpoints read with numpy alone: no torch import, no arbitrary code,
and no tensor outside its storage.

Why by hand: the ImageNet weights come as torchvision `.pth` files, PANNs' as a `.pth`
released in 2020 (which of the two formats below it has could not be checked here), and
torch is a test-only dependency of jaxgenre (training, evaluation
and predict must run without it). No maintained package reads torch's format without
torch itself.

Two formats, told apart by the file's first bytes (`load_state_dict` dispatches):
- torch >= 1.6's default (read here): a zip archive with one top folder holding
  `data.pkl` (a pickle of the object), `data/<key>` (each storage's raw bytes) and
  `byteorder`. The pickle names tensors by `torch._utils._rebuild_tensor_v2(storage,
  offset, size, stride, ...)` calls whose storages are persistent ids `('storage',
  torch.<Type>Storage, key, location, numel)`;
- torch < 1.6's, a sequence of pickles and then the raw storages: `pth_legacy`.
torch < 0.4's tar format is refused, saying so.

The unpickler (`pth_objects.Unpickler`) accepts exactly what `torch.load(weights_only=
True)` needs for tensors in containers — tensor and parameter rebuilds, storage types,
`OrderedDict()` and pickle's own plain containers — and refuses any other global with
`UnsafeCheckpoint`, before anything is called: a crafted file cannot run code, nor set
attributes on what it may call (pickle's BUILD). Every file, pinned or not, is then held
to what torch.save writes, so a crafted one cannot read memory or exhaust it:
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
  and every element it addresses inside the storage (`pth_objects.rebuild_tensor`);
- the bytes a file materialises — storages, then tensors (a stride-0 view counts at
  its full size) — stay within `pth_archive.default_limit` of the file's size, checked
  before anything is allocated, and no zip member inflates past its declared size
  (`pth_archive.read_member`).
Anything else is refused in one line naming the file and the member.

A state dict may be the file's top-level object (torchvision's) or one entry of a dict
beside plain values (PANNs' `{'model': state_dict, 'iteration': ...}`): `entry`.
"""

from __future__ import annotations

import collections
import itertools
import os
import zipfile
from typing import Any, Dict, Optional

import numpy as np

from jaxgenre.errors import UserError
from jaxgenre.models import pth_archive, pth_legacy, pth_scan
from jaxgenre.models.pth_archive import Refusal, short
from jaxgenre.models.pth_objects import StateDict, Storage, StorageType, Tensor, Unpickler

_FIX = "not a file torch.save writes (crafted or damaged): use the original checkpoint"
_TAR_MAGIC_AT = 257  # a tar header's "ustar" (torch < 0.4 saved a tar of pickles)


class UnsafeCheckpoint(UserError):
    """A `.pth` whose pickle asks for something other than tensors and containers."""


class UnreadableCheckpoint(UserError):
    """A file that is not a readable torch checkpoint (or not the state dict asked for)."""


class _Unpickler(Unpickler):
    """The zip format's unpickler: a storage is the archive's member `data/<key>`."""

    def __init__(self, data, archive: zipfile.ZipFile, prefix: str,
                 budget: pth_archive.Budget, where: str):
        super().__init__(data, budget, where)
        self.archive, self.prefix = archive, prefix

    def storage_name(self, key: str) -> str:
        return f"member '{self.prefix}data/{key}'"

    def new_storage(self, name: str, storage_type: StorageType, key: str,
                    numel: int) -> Storage:
        member = f"{self.prefix}data/{key}"
        try:
            info = self.archive.getinfo(member)
        except KeyError:
            raise Refusal(f"lacks storage {key} ('{member}')") from None
        nbytes = numel * storage_type.dtype.itemsize
        if info.file_size != nbytes:
            raise Refusal(f"{name} declares {numel} {storage_type.name} elements "
                          f"({nbytes} bytes) but holds {info.file_size}")
        self.budget.spend(nbytes, name)
        array = np.frombuffer(pth_archive.read_member(self.archive, member, nbytes),
                              dtype=storage_type.dtype)
        array.flags.writeable = False
        return Storage(name, storage_type, numel, array)


def _read_zip(archive: zipfile.ZipFile, budget: pth_archive.Budget, file_size: int) -> Any:
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
    where = f"member '{pickles[0]}'"
    pth_scan.scan(data, budget.limit, where)
    return _Unpickler(data, archive, prefix, budget, where).read()


def _load(path: str, max_bytes: Optional[int]) -> Any:
    """The top-level object of the checkpoint at `path` (tensors as `Tensor`s), read by
    the reader its first bytes call for."""
    try:
        file_size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(_TAR_MAGIC_AT + 5)
    except OSError as e:
        raise UnreadableCheckpoint(f"'{path}' cannot be read ({e})") from None
    limit = pth_archive.default_limit(file_size) if max_bytes is None else max_bytes
    if head[_TAR_MAGIC_AT:] == b"ustar":
        raise UnreadableCheckpoint(
            f"'{path}' is in torch < 0.4's tar format, which is not read here "
            f"(torch.load(weights_only=True) refuses it too): load it with that torch "
            f"and save it again with a recent one")
    if not head.startswith(b"PK"):
        return _guarded(path, lambda: pth_legacy.read(path, file_size,
                                                      pth_archive.Budget(limit)))
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise UnreadableCheckpoint(
            f"'{path}' is not a readable torchvision checkpoint (not a zip-format torch "
            f"file: {type(e).__name__}: {e}; a truncated download?)") from None
    with archive:
        return _guarded(path, lambda: _read_zip(archive, pth_archive.Budget(limit),
                                                file_size))


def _guarded(path: str, read) -> Any:
    """`read()`, its `Refusal` turned into the one-line error naming `path`."""
    try:
        return read()
    except Refusal as e:
        if e.unsafe:
            raise UnsafeCheckpoint(f"'{path}' {e}") from None
        raise UnreadableCheckpoint(f"'{path}' {e}; {_FIX}") from None
    except OSError as e:  # the file vanished or cannot be read midway
        raise UnreadableCheckpoint(f"'{path}' cannot be read ({e})") from None


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items())


def _keys(entries: dict) -> str:
    """An entry dict's keys for a message: the first 20, each cut short."""
    shown = [short(k, 40) for k in itertools.islice(entries, 20)]
    more = f" and {len(entries) - 20} more" if len(entries) > 20 else ""
    return (", ".join(shown) or "none") + more


def _plain(value: Any) -> bool:
    """Whether `value` is None, a bool, int, float, str, bytes, tensor, or a list, tuple
    or dict (`OrderedDict` too) of these (each container visited once: a pickle's
    shared references make a DAG whose paths are exponential)."""
    seen, work = set(), [value]
    while work:
        item = work.pop()
        if item is None or type(item) in (bool, int, float, str, bytes) \
                or isinstance(item, Tensor):
            continue
        if type(item) not in (list, tuple, dict, StateDict):
            return False
        if id(item) in seen:
            continue
        seen.add(id(item))
        work.extend(itertools.chain.from_iterable(item.items()) if isinstance(item, dict)
                    else item)
    return True


def load_state_dict(path: str, *, entry: Optional[str] = None,
                    max_bytes: Optional[int] = None) -> Dict[str, np.ndarray]:
    """`torch.load(path, weights_only=True)` for a state dict, as numpy arrays (a
    `collections.OrderedDict`, torch's order kept), from either format torch.save
    writes. With `entry`, the file holds a dict whose `entry` is the state dict (PANNs'
    `'model'`), its other values plain (None, bool, int, float, str, tensors, and
    lists, tuples and dicts of these), which are ignored; without, the state dict is the
    top-level object. `max_bytes` bounds what the file may materialise (storages and
    tensors; and, counted apart, the objects its pickles make); by default
    `pth_archive.default_limit` of its size. A file torch.save would not write, or
    without the state dict asked for, raises `UnreadableCheckpoint` (or
    `UnsafeCheckpoint`) naming it."""
    top = _load(path, max_bytes)
    state, what = top, "does not hold a state dict of tensors"
    if entry is not None:
        if not isinstance(top, dict):
            raise UnreadableCheckpoint(f"'{path}' does not hold a dict of entries, so no "
                                       f"entry {short(entry)} (got {short(top)})")
        if entry not in top:
            raise UnreadableCheckpoint(f"'{path}' has no entry {short(entry)}; its entries "
                                       f"are {_keys(top)}")
        odd = next((k for k, v in top.items() if k != entry and not _plain(v)), None)
        if odd is not None:
            raise UnreadableCheckpoint(
                f"'{path}' entry {short(odd)} holds {short(top[odd])}, not plain values "
                f"or tensors; {_FIX}")
        state, what = top[entry], f"entry {short(entry)} does not hold a state dict of tensors"
    if not _is_state_dict(state):
        hint = ""
        if entry is None and isinstance(top, dict):
            inner = [k for k in ("model", "state_dict") if isinstance(top.get(k), dict)]
            if inner:
                hint = (f"; it holds entries {_keys(top)}: is the state dict its "
                        f"{inner[0]!r} entry (load_state_dict(..., entry={inner[0]!r}))?")
        raise UnreadableCheckpoint(f"'{path}' {what} (got {short(state)}){hint or '; ' + _FIX}")
    return collections.OrderedDict((k, v.array) for k, v in state.items())
