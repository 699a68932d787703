"""Whether a feature-cache entry on disk may be served for a request (`check_entry`).

An entry is served only when all of these hold, checked in this order (cheapest first):
1. meta.json parses to an object carrying every checksum (`CHECKSUMS`) and matches its
   own SHA-256. An entry written before the checksums existed is not trusted.
2. Every field has the shape the cache writes (lists of clip-count length, integers
   where integers go), so a hand-made or truncated meta.json cannot crash a reader.
3. It answers the request: every field of the request's meta (source identity, kind,
   params, sr, clip_seconds, dtype, format, clip ids, labels, class names and, for
   clips that are files, each file's (size, mtime_ns)) equals the stored one. An entry
   copied or renamed under another key, or one whose audio files have since been
   overwritten, is stale.
4. features.npy opens with the shape, dtype and byte size meta.json records, and a
   sample of clips (`SAMPLED_CLIPS` fixed ones and the last) matches its CRC-32.
Any failure is a few words; the cache then sets the entry aside and computes it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from typing import Any, Dict, Optional

import numpy as np

SAMPLED_CLIPS = 32  # clips whose checksum is verified each time an entry is opened
CHECKSUMS = ("meta_sha256", "clip_crc32", "npy_bytes", "shape")
# Compared in this order, so a problem names the most telling difference first.
REQUEST_FIELDS = ("format", "source", "kind", "params", "sr", "clip_seconds", "dtype",
                  "clip_ids", "labels", "class_names", "files")


def meta_digest(meta: Dict) -> str:
    """SHA-256 of meta.json's content without its own digest."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()


def clip_crc(features: np.ndarray, i: int) -> int:
    return zlib.crc32(np.ascontiguousarray(features[i]).tobytes())


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _list_of(value: Any, ok, n: Optional[int]) -> bool:
    return isinstance(value, list) and (n is None or len(value) == n) and all(map(ok, value))


def _file_stat(x: Any) -> bool:
    return x is None or (isinstance(x, list) and len(x) == 2 and all(map(_is_int, x)))


def shape_problem(meta: Any) -> Optional[str]:
    """What makes `meta` not a meta.json the cache writes (checks 1 and 2), or None."""
    if not isinstance(meta, dict):
        return f"meta.json holds a {type(meta).__name__}, not an object"
    missing = [k for k in CHECKSUMS if k not in meta]
    if missing:
        return f"meta.json has no {', '.join(missing)} (written without checksums)"
    if not isinstance(meta["meta_sha256"], str):
        return "meta.json's meta_sha256 is not a string"
    try:
        if meta["meta_sha256"] != meta_digest(meta):
            return "meta.json does not match its checksum"
    except (TypeError, ValueError):  # NaN, or a value JSON cannot hold
        return "meta.json holds a value that is not plain JSON"
    if not _list_of(meta.get("clip_ids"), lambda x: isinstance(x, str), None):
        return "meta.json's clip_ids is not a list of strings"
    n = len(meta["clip_ids"])
    expected = {"labels": _list_of(meta.get("labels"), _is_int, n),
                "class_names": _list_of(meta.get("class_names"), lambda x: isinstance(x, str),
                                        None),
                "clip_crc32": _list_of(meta["clip_crc32"], _is_int, n),
                "shape": _list_of(meta["shape"], _is_int, None) and bool(meta["shape"])
                and meta["shape"][0] == n,
                "npy_bytes": _is_int(meta["npy_bytes"]),
                "dtype": isinstance(meta.get("dtype", "float32"), str),
                "files": "files" not in meta or _list_of(meta["files"], _file_stat, n)}
    wrong = [k for k, ok in expected.items() if not ok]
    if wrong:
        return f"meta.json's {', '.join(wrong)} do(es) not fit its {n} clip ids"
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def _difference(stored: Any, wanted: Any) -> str:
    """Where `stored` first differs from `wanted`, in a few words."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for k in sorted(set(stored) | set(wanted)):
            if stored.get(k, "<none>") != wanted.get(k, "<none>"):
                return (f"{k}: {_short(stored.get(k, '<none>'))}, "
                        f"wanted {_short(wanted.get(k, '<none>'))}")
    if isinstance(stored, list) and isinstance(wanted, list):
        if len(stored) != len(wanted):
            return f"{len(stored)} items, wanted {len(wanted)}"
        i = next(i for i, (a, b) in enumerate(zip(stored, wanted)) if a != b)
        return f"item {i}: {_short(stored[i])}, wanted {_short(wanted[i])}"
    return f"{_short(stored)}, wanted {_short(wanted)}"


def request_problem(meta: Dict, request: Dict) -> Optional[str]:
    """How the entry's meta.json differs from the request's (check 3), or None."""
    for key in REQUEST_FIELDS:
        if key not in request and key not in meta:
            continue
        stored, wanted = meta.get(key, "<none>"), request.get(key, "<none>")
        if stored == wanted:
            continue
        if key == "files" and isinstance(stored, list) and isinstance(wanted, list) \
                and len(stored) == len(wanted):
            i = next(i for i, (a, b) in enumerate(zip(stored, wanted)) if a != b)
            return (f"the file of clip {i} ({request['clip_ids'][i]}) changed since the entry "
                    f"was written ([size, mtime_ns] {stored[i]} then, {wanted[i]} now)")
        return f"meta.json's {key} differs from this run's ({_difference(stored, wanted)})"
    return None


def check_entry(path: str, sample: Optional[int] = SAMPLED_CLIPS,
                expected: Optional[Dict] = None) -> Optional[str]:
    """What is wrong with the cache entry at `path`, in a few words, or None if it may
    be served: checks 1, 2 and 4 of the module docstring, and 3 when `expected` (the
    request's meta, `cache.request_meta`) is given. `sample` clips (None: all) have
    their CRC-32 checked."""
    try:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        return f"meta.json unreadable: {type(e).__name__}"
    problem = shape_problem(meta) or (request_problem(meta, expected) if expected else None)
    if problem:
        return problem
    npy = os.path.join(path, "features.npy")
    try:
        data = np.load(npy, mmap_mode="r")
    except (OSError, ValueError) as e:
        return f"features.npy unreadable: {' '.join(str(e).split())[:120]}"
    shape, n = tuple(meta["shape"]), len(meta["clip_ids"])
    if data.shape != shape or str(data.dtype) != meta.get("dtype", "float32"):
        return f"features.npy holds {data.shape} {data.dtype}, meta.json says {shape}"
    if os.path.getsize(npy) != meta["npy_bytes"]:
        return f"features.npy is {os.path.getsize(npy)} bytes, meta.json says {meta['npy_bytes']}"
    crcs = meta["clip_crc32"]
    picked = (range(n) if sample is None or sample >= n else
              sorted(set(np.random.default_rng(0).choice(n, sample, replace=False).tolist())
                     | {n - 1}))
    for i in picked:
        if clip_crc(data, i) != crcs[i]:
            return f"clip {i} ({meta['clip_ids'][i]}) does not match its checksum"
    return None
