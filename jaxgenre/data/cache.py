"""Features computed once per (source, feature parameters, clip list) and kept on disk.

A cache entry is a folder `<cache_dir>/<kind>-<key>/` holding `features.npy`
(`(clips, ...)` float32, or float16 with `dtype='float16'` — half the disk and page
cache, e.g. for FMA-large; batches are float32 either way — opened memory-mapped, so
a data set larger than RAM still works) and `meta.json` (clip ids, labels, class names,
everything hashed into the key, and the checksums below).
The key is a SHA-256 of the source's identity, sample rate, clip length, every feature
parameter and the ordered clip ids: change any of them and a new entry is computed;
a stale entry is never read. Entries are written under a temporary name and renamed
when complete, so an interrupted run leaves no half-written cache behind.

Every entry is checked when opened (`check_entry`, in `cache_check.py`): meta.json is
whole (its own SHA-256, every checksum present, every field of the right shape),
features.npy has the shape, dtype and byte size meta.json records, a sample of clips
(`SAMPLED_CLIPS` fixed ones and the last) matches the CRC-32 stored per clip, and the
entry answers this request: source, params, clip ids, ... all equal the request's
(`request_meta`). For clips that are files (folder, GTZAN, FMA) the request also holds
each file's (size, mtime_ns), taken when the run starts: overwrite a file and its entry
is stale. A stat per file keeps opening cheap; a file rewritten with the same size and
its old mtime restored is the one change it cannot see. A damaged or stale entry is
set aside and computed again, with a one-line warning. The sample keeps opening cheap
on any size of data set (BUILD_NOTES has the cost); `check_entry(path, sample=None)`
checks every clip.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import math
import os
import shutil
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from jaxgenre.data.cache_check import SAMPLED_CLIPS, check_entry, clip_crc, meta_digest
from jaxgenre.data.types import ClipRef, Source
from jaxgenre.errors import UserError
from jaxgenre.features import FeatureSpec

__all__ = ["CACHE_FORMAT", "DTYPES", "SAMPLED_CLIPS", "FeatureStore", "build_features",
           "cache_key", "check_entry", "request_meta"]
CACHE_FORMAT = 1  # bump when the layout or the feature code changes meaning
_clip_crc = clip_crc  # the name benchmarks/cache_check.py times


@dataclasses.dataclass(frozen=True)
class FeatureStore:
    """Cached features of a clip list: `features[i]` belongs to `clip_ids[i]`."""
    path: str
    features: np.ndarray  # memory-mapped, read-only
    clip_ids: Tuple[str, ...]
    labels: np.ndarray
    class_names: Tuple[str, ...]
    hit: bool  # True when the entry already existed

    def __len__(self) -> int:
        return len(self.clip_ids)


DTYPES = ("float32", "float16")


def cache_key(source: Source, feature: Dict, clips: Sequence[ClipRef],
              dtype: str = "float32") -> str:
    """The entry's name: a digest of the source, `feature` (`FeatureSpec.identity()`, or
    any JSON-able dict naming what is derived from the clips), the clip ids and dtype."""
    identity = {"format": CACHE_FORMAT, "source": source.identity(), "sr": source.sr,
                "clip_seconds": source.clip_seconds,
                "features": {k: feature[k] for k in sorted(feature)},
                "clips": [c.clip_id for c in clips]}
    if dtype != "float32":  # float32 entries keep the keys they had before the option
        identity["dtype"] = dtype
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _load_batch(pool, source: Source, refs: Sequence[ClipRef]) -> np.ndarray:
    return np.stack(list(pool.map(source.load, refs)))


def build_features(source: Source, spec: FeatureSpec, cache_dir: str, *,
                   clips: Optional[Sequence[ClipRef]] = None, batch_size: int = 16,
                   dtype: str = "float32", progress: bool = True) -> FeatureStore:
    """Returns the cached features of `clips` (default: all usable clips of `source`),
    computing and storing them first if this exact entry does not exist yet.

    `spec` is the feature (`FeatureSpec.from_config(config.features)`): its identity,
    the kind and only that transform's parameters, keys the entry.
    Audio is decoded by a small thread pool while the previous batch's features compute.
    """
    if dtype not in DTYPES:
        raise UserError(f"config.data.cache_dtype must be one of {', '.join(DTYPES)}; "
                        f"got {dtype!r}")
    clips = tuple(source.clips if clips is None else clips)
    if not clips:
        raise UserError("no clips to compute features for: the data report lists why")
    key = cache_key(source, spec.identity(), clips, dtype)
    path = os.path.join(cache_dir, f"{spec.kind}-{key}")
    meta = request_meta(source, spec, clips, dtype)
    hit = os.path.isfile(os.path.join(path, "meta.json")) or os.path.isdir(path)
    if hit:  # a folder without meta.json is damaged too
        problem = check_entry(path, expected=meta)
        if problem:
            _warn(path, problem)
            _set_aside(path)
            hit = False
    if not hit:
        _compute(source, spec, clips, path, meta, batch_size, progress, dtype)
    data = np.load(os.path.join(path, "features.npy"), mmap_mode="r")
    return FeatureStore(path=path, features=data, clip_ids=tuple(meta["clip_ids"]),
                        labels=np.asarray(meta["labels"], dtype=np.int32),
                        class_names=tuple(source.class_names), hit=hit)


def request_meta(source: Source, spec: FeatureSpec, clips: Sequence[ClipRef],
                 dtype: str = "float32") -> Dict:
    """What an entry for this request must hold in meta.json besides its checksums, as
    JSON gives it back: `check_entry(path, expected=...)` compares every field. Feature
    parameters must be finite (JSON has no NaN); clips that are files add their
    (size, mtime_ns), taken now, before any is decoded."""
    params = spec.kwargs
    for k, v in params.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise UserError(f"config.features.{k} must be a finite number (or None where "
                            f"it allows None), got {v}")
    meta = {"clip_ids": [c.clip_id for c in clips], "labels": [c.label for c in clips],
            "class_names": list(source.class_names), "kind": spec.kind,
            "params": {k: params[k] for k in sorted(params)}, "source": source.identity(),
            "sr": source.sr, "clip_seconds": source.clip_seconds, "format": CACHE_FORMAT,
            "dtype": dtype}
    files = _file_stats(clips)
    if any(f is not None for f in files):
        meta["files"] = files
    try:
        return json.loads(json.dumps(meta, allow_nan=False))
    except ValueError:
        raise UserError(f"data.clip_seconds, features.sr and the data source's settings "
                        f"must be finite numbers, got {source.clip_seconds}, {source.sr} and "
                        f"{source.identity()}") from None


def _file_stats(clips: Sequence[ClipRef]) -> List[Optional[List[int]]]:
    """[size, mtime_ns] of each clip that is a file, None for the others."""
    stats: List[Optional[List[int]]] = []
    for c in clips:
        if not isinstance(c.locator, (str, os.PathLike)):
            stats.append(None)
            continue
        try:
            st = os.stat(c.locator)
        except OSError as e:
            raise UserError(f"clip file '{os.fspath(c.locator)}' ({c.clip_id}) is gone or "
                            f"unreadable since the data set was read ({e.strerror or e}); "
                            f"restore it, or run again so the data set is read anew") from None
        stats.append([st.st_size, st.st_mtime_ns])
    return stats


def _warn(path: str, problem: str) -> None:
    print(f"WARNING: feature cache {path} is damaged or stale ({problem}); computing it again",
          file=sys.stderr, flush=True)


def _set_aside(path: str) -> None:
    """Removes a damaged entry: renamed first (so no reader opens it half-deleted), then
    deleted; a feature cache is computed again, so there is nothing to keep."""
    aside = f"{path}.damaged-{os.getpid()}"
    try:
        os.replace(path, aside)
    except OSError:  # another process set it aside first
        return
    shutil.rmtree(aside, ignore_errors=True)


def _compute(source, spec, clips, path, meta, batch_size, progress, dtype) -> None:
    """Computes the entry under a temporary name, then renames it into place. A write
    that fails (a full disk, a quota) removes the temporary folder and is a `UserError`
    naming the folder and the room the entry needs; entries already there are untouched."""
    partial = f"{path}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        os.makedirs(partial)
        _write_entry(source, spec, clips, path, partial, meta, batch_size, progress, dtype)
    except OSError as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise UserError(f"cannot write the feature cache {partial} ({e.strerror or e}): free "
                        f"space there or set --config.data.cache_dir to a disk with room"
                        f"{_entry_size(source, spec, clips, dtype)}") from None


def _entry_size(source, spec: FeatureSpec, clips, dtype) -> str:
    """' (this entry needs about N MB)', from one clip's feature shape; '' if unknown."""
    try:
        one = math.prod(spec.example_shape(spec.frames(source.clip_seconds)))
        return (f" (this entry needs about "
                f"{max(1, round(one * np.dtype(dtype).itemsize * len(clips) / 1e6))} MB)")
    except Exception:  # the message matters more than the estimate
        return ""


def _write_entry(source, spec: FeatureSpec, clips, path, partial, meta, batch_size, progress,
                 dtype) -> None:
    batches = [clips[i:i + batch_size] for i in range(0, len(clips), batch_size)]

    def compute(audio: np.ndarray) -> np.ndarray:  # one compiled shape: pad the last batch
        short = batch_size - len(audio)
        padded = np.pad(audio, ((0, short), (0, 0))) if short > 0 else audio
        return np.asarray(spec.compute(padded))[:len(audio)]

    out = None
    with concurrent.futures.ThreadPoolExecutor(1) as prefetch, \
            concurrent.futures.ThreadPoolExecutor(2) as decode, \
            tqdm(total=len(clips), desc=f"{spec.kind} features", unit="clip",
                 disable=not progress) as bar:
        pending = prefetch.submit(_load_batch, decode, source, batches[0])
        start = 0
        for i in range(len(batches)):
            audio = pending.result()
            if i + 1 < len(batches):  # decode the next batch while this one computes
                pending = prefetch.submit(_load_batch, decode, source, batches[i + 1])
            values = compute(audio)
            if out is None:
                out = np.lib.format.open_memmap(os.path.join(partial, "features.npy"), mode="w+",
                                                dtype=np.dtype(dtype),
                                                shape=(len(clips),) + values.shape[1:])
                # Claim the disk space now: a full disk is then an error here, not a
                # SIGBUS later when the memory map's pages are written back.
                with open(os.path.join(partial, "features.npy"), "r+b") as f:
                    os.posix_fallocate(f.fileno(), 0, out.offset + out.nbytes)
            out[start:start + len(values)] = values
            start += len(values)
            bar.update(len(values))
    out.flush()
    request = meta
    meta = {**meta, "shape": list(out.shape),
            "clip_crc32": [clip_crc(out, i) for i in range(len(clips))]}
    del out
    meta["npy_bytes"] = os.path.getsize(os.path.join(partial, "features.npy"))
    meta["meta_sha256"] = meta_digest(meta)
    with open(os.path.join(partial, "meta.json"), "w") as f:
        json.dump(meta, f, allow_nan=False)
    try:
        os.replace(partial, path)
    except OSError:  # another process (e.g. of a multi-process run) finished it first
        problem = check_entry(path, expected=request)
        if problem is None:  # theirs answers this request: use it
            shutil.rmtree(partial)
            return
        _warn(path, problem)  # what landed there is not this request's: ours replaces it
        _set_aside(path)
        os.replace(partial, path)
