"""torch's legacy `.pth` format read with numpy alone, under the zip reader's rules
(`models.pth`, which dispatches here on a file's first bytes).

Why: torch < 1.6 saved in this format by default (PANNs' 2020 checkpoints may be in it),
and torch >= 1.6 still writes it with `torch.save(obj, f,
_use_new_zipfile_serialization=False)` and reads it with `torch.load`.

The format (torch/serialization.py's `_legacy_save` and `_legacy_load`): five pickles
one after the other, then the storages' bytes to the end of the file:
1. the magic number 0x1950A86A20F9469CFC6C;
2. the protocol version, 1001;
3. sys_info: `{'protocol_version': 1001, 'little_endian': True, 'type_sizes':
   {'short': 2, 'int': 4, 'long': 4}}` (struct's standard sizes, whatever the platform);
4. the object (say a state dict), whose storages are persistent ids `('storage',
   torch.<Type>Storage, key, location, numel, view_metadata)`;
5. the list of the storage keys (sorted);
then, for each key in that list's order, its element count (8 bytes, little-endian)
and its `numel * itemsize` raw bytes.

The guarantees are the zip reader's:
- the pickles together are at most `pth_archive.pickle_limit` bytes (read in bounded
  pieces, never by a declared length), each scanned (`pth_scan`, the objects of all five
  within the file's limit) before `pth_objects.Unpickler` unpickles it: its globals
  only (none at all in pickles 1-3 and 5), nothing else called;
- pickles 1-3 are exactly what torch writes (a big-endian file is refused: its counts
  and bytes are in that order);
- a storage id declares an int numel >= 0 under one type per key; the storages' declared
  bytes must lie in what the file holds after pickle 4 and within the file's budget,
  checked before anything is allocated; a tensor's elements lie inside its storage's
  declared numel, and it is copied out once that storage is read;
- `view_metadata` must be None: a storage that is a view of another was written only by
  torch < 1.0 (since then torch always writes None), so views are refused, saying so,
  rather than read;
- the key list holds each key the object uses, once, and no other; each storage's
  count is the numel its id declares, its bytes are all there, and the file ends with
  the last of them (no trailing bytes).
Anything else is a `Refusal` in one line.
"""

from __future__ import annotations

import pickletools
from typing import Any, BinaryIO, Dict, List

import numpy as np

from jaxgenre.models import pth_archive, pth_scan
from jaxgenre.models.pth_archive import Budget, Refusal, short
from jaxgenre.models.pth_objects import Storage, StorageType, Tensor, Unpickler

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
SYS_INFO = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
_COUNT_BYTES = 8  # each storage's int64 element count


class _Recorder:
    """The bytes `pickletools.genops` reads from a file, kept, and never more than `cap`
    in all (a read past it comes back short, and genops then fails)."""

    def __init__(self, f: BinaryIO, cap: int):
        self.f, self.left, self.data = f, cap, bytearray()

    def _keep(self, chunk: bytes) -> bytes:
        self.left -= len(chunk)
        self.data += chunk
        return chunk

    def read(self, n: int = -1) -> bytes:
        return self._keep(self.f.read(self.left if n is None or n < 0 else min(n, self.left)))

    def readline(self, n: int = -1) -> bytes:
        return self._keep(self.f.readline(self.left if n is None or n < 0
                                          else min(n, self.left)))


class _Unpickler(Unpickler):
    """The object pickle's unpickler: a storage is a placeholder of its declared numel,
    whose bytes (at most `room` for all, with their counts) come after the pickles; its
    tensors are checked now and filled once their storages are read (`made`)."""

    PID_LENGTH = 6

    def __init__(self, data, budget: Budget, where: str, room: int):
        super().__init__(data, budget, where)
        self.room = room
        self.made: List[Tensor] = []  # to fill once their storages are read

    def rebuild_tensor_v2(self, *args, **kwargs) -> Tensor:
        tensor = super().rebuild_tensor_v2(*args, **kwargs)
        self.made.append(tensor)
        return tensor

    def persistent_load(self, pid) -> Storage:
        if type(pid) is tuple and len(pid) == self.PID_LENGTH and pid[5] is not None:
            raise Refusal(f"holds a storage view {short(pid[5])} (of storage "
                          f"{short(pid[2])}), which only torch < 1.0 wrote and which "
                          f"this reader does not support; save the file again with a "
                          f"recent torch")
        return super().persistent_load(pid)

    def new_storage(self, name: str, storage_type: StorageType, key: str,
                    numel: int) -> Storage:
        nbytes = numel * storage_type.dtype.itemsize
        if _COUNT_BYTES + nbytes > self.room:
            raise Refusal(f"{name} declares {numel} {storage_type.name} elements ({nbytes} "
                          f"bytes), more than the {max(self.room, 0)} bytes the file has "
                          f"left for its storages (truncated, or crafted)")
        self.room -= _COUNT_BYTES + nbytes
        self.budget.spend(nbytes, name)
        return Storage(name, storage_type, numel)


class _Reader:
    """The file's pickles in turn, each read, scanned and unpickled."""

    def __init__(self, f: BinaryIO, file_size: int, budget: Budget):
        self.f, self.file_size, self.budget = f, file_size, budget
        self.pickle_left = pth_archive.pickle_limit(file_size, budget.limit)
        self.charged = 0  # bytes of pickle objects `pth_scan` has counted so far

    def pickle(self, what: str) -> bytes:
        """The next pickle's bytes (through its STOP), scanned."""
        start = self.f.tell()
        recorder = _Recorder(self.f, self.pickle_left)
        try:
            for _ in pickletools.genops(recorder):
                pass  # genops stops after STOP
        except Exception as e:  # cut short, damaged, or too long
            if recorder.left <= 0:
                raise Refusal(f"has pickles longer than the {self.pickle_limit()} bytes "
                              f"allowed them (reading {what} at byte {start})") from None
            if self.f.tell() >= self.file_size:
                raise Refusal(f"is truncated: it ends inside {what} (at byte {start})") \
                    from None
            raise Refusal(f"has a damaged {what} at byte {start} ({type(e).__name__}: "
                          f"{short(e.args[0] if len(e.args) == 1 else e.args, 200)})") \
                from None
        self.pickle_left = recorder.left
        data = bytes(recorder.data)
        self.charged += pth_scan.scan(data, self.budget.limit - self.charged,
                                      f"{what} (at byte {start})")
        return data

    def pickle_limit(self) -> int:
        return pth_archive.pickle_limit(self.file_size, self.budget.limit)

    def plain(self, what: str) -> Any:
        """The next pickle's value, which may hold no global and no storage."""
        start = self.f.tell()
        data = self.pickle(what)
        return Unpickler(data, self.budget, f"{what} (at byte {start})", tensors=False).read()

    def storage(self, storage: Storage) -> None:
        """The next storage's count and bytes, held to what its id declared."""
        start = self.f.tell()
        count = self.f.read(_COUNT_BYTES)
        if len(count) < _COUNT_BYTES:
            raise Refusal(f"is truncated: it ends inside the count of {storage.name} (at "
                          f"byte {start})")
        numel = int.from_bytes(count, "little", signed=True)
        if numel != storage.numel:
            raise Refusal(f"{storage.name} (at byte {start}) counts {numel} elements, but "
                          f"the pickle declares {storage.numel}")
        nbytes = numel * storage.type.dtype.itemsize
        if nbytes > self.file_size - self.f.tell():
            raise Refusal(f"is truncated: {storage.name} (at byte {start}) needs {nbytes} "
                          f"bytes, and the file has {self.file_size - self.f.tell()} left")
        data = bytearray(nbytes)
        if self.f.readinto(data) != nbytes:  # the file shrank while read
            raise Refusal(f"is truncated: {storage.name} (at byte {start}) is cut short")
        storage.array = np.frombuffer(data, dtype=storage.type.dtype)
        storage.array.flags.writeable = False


def _same(value: Any, expected: Any) -> bool:
    """`value == expected`, types included (True is not 1), dicts in any order."""
    if type(value) is not type(expected):
        return False
    if type(value) is dict:
        return value.keys() == expected.keys() and all(
            _same(value[k], expected[k]) for k in expected)
    return value == expected


def _expect(value: Any, expected: Any, what: str) -> None:
    if not _same(value, expected):
        raise Refusal(f"has {what} {short(value, 200)}, not torch's {short(expected, 200)}")


def _check_keys(keys: Any, used: Dict[str, Storage]) -> List[str]:
    """The key list: each storage the object uses, once, and no other."""
    if type(keys) is not list or not all(type(k) is str for k in keys):
        raise Refusal(f"has storage key list {short(keys)}, not a list of strings")
    seen = set()
    for key in keys:
        if key in seen:
            raise Refusal(f"lists storage {short(key)} twice in its storage key list")
        if key not in used:
            raise Refusal(f"lists storage {short(key)} in its storage key list, but its "
                          f"pickle never uses it")
        seen.add(key)
    missing = [k for k in used if k not in seen]
    if missing:
        raise Refusal(f"lacks storage {short(missing[0])} in its storage key list, which "
                      f"its pickle uses ({len(missing)} missing)")
    return keys


def read(path: str, file_size: int, budget: Budget) -> Any:
    """The top-level object of the legacy-format file at `path` (`file_size` bytes), its
    tensors as `pth_objects.Tensor`s; anything torch.save would not write is a
    `Refusal`."""
    with open(path, "rb") as f:
        reader = _Reader(f, file_size, budget)
        try:
            magic = reader.plain("its first pickle")
        except Refusal as e:
            if e.unsafe:
                raise
            raise Refusal(f"is not a torch checkpoint: it begins with neither a zip header "
                          f"nor torch's legacy magic number ({e})") from None
        if type(magic) is not int or magic != MAGIC_NUMBER:
            raise Refusal(f"is not a torch checkpoint: it begins with neither a zip header "
                          f"nor torch's legacy magic number (but with a pickle of "
                          f"{short(magic)})")
        _expect(reader.plain("its protocol version"), PROTOCOL_VERSION, "protocol version")
        sys_info = reader.plain("its sys_info")
        if type(sys_info) is dict and sys_info.get("little_endian") is False:
            raise Refusal("was saved big-endian (its sys_info says so); not supported")
        _expect(sys_info, SYS_INFO, "sys_info")
        start = f.tell()
        data = reader.pickle("its object pickle")
        unpickler = _Unpickler(data, budget, f"its object pickle (at byte {start})",
                               room=file_size - f.tell())
        top = unpickler.read()
        keys = _check_keys(reader.plain("its storage key list"), unpickler.storages)
        waiting: Dict[str, List[Tensor]] = {}
        for tensor in unpickler.made:
            if tensor.array is None:
                waiting.setdefault(tensor.storage.name, []).append(tensor)
        for key in keys:
            storage = unpickler.storages[key]
            reader.storage(storage)
            for tensor in waiting.pop(storage.name, ()):
                tensor.fill()
            storage.array = None  # its tensors hold their own copies
        if f.tell() != file_size:
            raise Refusal(f"has {file_size - f.tell()} bytes after its last storage (at "
                          f"byte {f.tell()}), which torch.save never writes")
    return top
