"""Features computed once per (source, feature parameters, clip list) and kept on disk.

A cache entry is a folder `<cache_dir>/<kind>-<key>/` holding `features.npy`
(`(clips, ...)` float32, or float16 with `dtype='float16'` — half the disk and page
cache, e.g. for FMA-large; batches are float32 either way — opened memory-mapped, so
a data set larger than RAM still works) and `meta.json` (clip ids, labels, class names, everything hashed into the key).
The key is a SHA-256 of the source's identity, sample rate, clip length, every feature
parameter and the ordered clip ids: change any of them and a new entry is computed;
a stale entry is never read. Entries are written under a temporary name and renamed
when complete, so an interrupted run leaves no half-written cache behind.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import shutil
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from jaxgenre import features
from jaxgenre.data.types import ClipRef, Source
from jaxgenre.errors import UserError

CACHE_FORMAT = 1  # bump when the layout or the feature code changes meaning


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


def cache_key(source: Source, feature_params: Dict, clips: Sequence[ClipRef],
              dtype: str = "float32") -> str:
    identity = {"format": CACHE_FORMAT, "source": source.identity(), "sr": source.sr,
                "clip_seconds": source.clip_seconds,
                "features": {k: feature_params[k] for k in sorted(feature_params)},
                "clips": [c.clip_id for c in clips]}
    if dtype != "float32":  # float32 entries keep the keys they had before the option
        identity["dtype"] = dtype
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def _load_batch(pool, source: Source, refs: Sequence[ClipRef]) -> np.ndarray:
    return np.stack(list(pool.map(source.load, refs)))


def build_features(source: Source, feature_params: Dict, cache_dir: str, *,
                   clips: Optional[Sequence[ClipRef]] = None, batch_size: int = 16,
                   dtype: str = "float32", progress: bool = True) -> FeatureStore:
    """Returns the cached features of `clips` (default: all usable clips of `source`),
    computing and storing them first if this exact entry does not exist yet.

    `feature_params` is `config.features` as a dict (`kind` plus transform parameters).
    Audio is decoded by a small thread pool while the previous batch's features compute.
    """
    if dtype not in DTYPES:
        raise UserError(f"config.data.cache_dtype must be one of {', '.join(DTYPES)}; "
                        f"got {dtype!r}")
    clips = tuple(source.clips if clips is None else clips)
    if not clips:
        raise UserError("no clips to compute features for: the data report lists why")
    params = dict(feature_params)
    kind = params.pop("kind")
    key = cache_key(source, {"kind": kind, **params}, clips, dtype)
    path = os.path.join(cache_dir, f"{kind}-{key}")
    meta = {"clip_ids": [c.clip_id for c in clips], "labels": [c.label for c in clips],
            "class_names": list(source.class_names), "kind": kind,
            "params": {k: params[k] for k in sorted(params)}, "source": source.identity(),
            "sr": source.sr, "clip_seconds": source.clip_seconds, "format": CACHE_FORMAT,
            "dtype": dtype}
    hit = os.path.isfile(os.path.join(path, "meta.json"))
    if not hit:
        _compute(source, kind, params, clips, path, meta, batch_size, progress, dtype)
    data = np.load(os.path.join(path, "features.npy"), mmap_mode="r")
    return FeatureStore(path=path, features=data, clip_ids=tuple(meta["clip_ids"]),
                        labels=np.asarray(meta["labels"], dtype=np.int32),
                        class_names=tuple(source.class_names), hit=hit)


def _compute(source, kind, params, clips, path, meta, batch_size, progress, dtype) -> None:
    partial = f"{path}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    batches = [clips[i:i + batch_size] for i in range(0, len(clips), batch_size)]

    def compute(audio: np.ndarray) -> np.ndarray:  # one compiled shape: pad the last batch
        short = batch_size - len(audio)
        padded = np.pad(audio, ((0, short), (0, 0))) if short > 0 else audio
        return np.asarray(features.compute(padded, kind=kind, **params))[:len(audio)]

    out = None
    with concurrent.futures.ThreadPoolExecutor(1) as prefetch, \
            concurrent.futures.ThreadPoolExecutor(2) as decode, \
            tqdm(total=len(clips), desc=f"{kind} features", unit="clip",
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
            out[start:start + len(values)] = values
            start += len(values)
            bar.update(len(values))
    out.flush()
    del out
    with open(os.path.join(partial, "meta.json"), "w") as f:
        json.dump(meta, f)
    try:
        os.replace(partial, path)
    except OSError:  # another process (e.g. of a multi-process run) finished it first
        if not os.path.isfile(os.path.join(path, "meta.json")):
            raise
        shutil.rmtree(partial)
