"""Device-resident features: the cached features of every clip a run uses, placed on the
devices once, and training and evaluation windows cut from them inside the jitted step.

The streamed path (`pipeline` + `prefetch`) gathers every batch on the host from the
memory-mapped cache and copies it to the devices: on an accelerator that input path,
not the step, sets the pace (issue 25). Here the host sends only a few integers per
window — which clip row, which start frame, the label, the mask — and the devices cut
the window with `lax.dynamic_slice`.

The windows themselves are the streamed path's: the same `pipeline.batch_order` of
(seed, epoch) and the same `pipeline.random_crops`, so for one seed both paths train on
the same batches in the same order (tested, tests/test_resident.py). Drawing those
indices stays on the host (microseconds an epoch) because that is what makes the two
paths equal and keeps every existing run's batches as they were.

The table is sharded over the mesh's 'data' axis by clip: each device holds
`rows / devices` clips, and in a multi-process run each process reads only the rows of
its own devices from the cache. A window is cut on the device that holds its clip,
zeros elsewhere, and one `psum_scatter` over 'data' hands every device its rows of the
batch (adding zeros is exact, so the batch is bit-for-bit the gathered one).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgenre import parallel
from jaxgenre.data import pipeline
from jaxgenre.data.cache import FeatureStore

SETTINGS = ("auto", True, False)  # config.train.resident


@dataclasses.dataclass(frozen=True)
class Table:
    """The resident features: `features[row_of_clip[i]]` is the store's clip `i`."""
    features: jax.Array  # (rows, ..., frames) in the cache's dtype, rows split over 'data'
    row_of_clip: np.ndarray  # (len(store),) int32; -1 for a clip not placed

    @property
    def bytes(self) -> int:
        return int(self.features.size) * self.features.dtype.itemsize


def table_rows(n_clips: int, mesh: Mesh) -> int:
    """Rows of a table of `n_clips` clips: padded to a multiple of the 'data' devices."""
    devices = mesh.shape[parallel.DATA_AXIS]
    return -(-n_clips // devices) * devices


def device_budget(mesh: Mesh, fraction: float) -> Tuple[int, str]:
    """(bytes one device may give the table, what that is a share of). Accelerators
    report their memory (`memory_stats()['bytes_limit']`); CPU devices share the host's
    RAM, so there the budget is the fraction of MemAvailable, split over the devices."""
    device = next(d for d in mesh.devices.reshape(-1) if d.process_index == jax.process_index())
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        limit = int(stats["bytes_limit"])
        return int(limit * fraction), f"{fraction:.0%} of the device's {limit / 2**30:.1f} GiB"
    available = _host_available_bytes()
    devices = mesh.shape[parallel.DATA_AXIS] // max(jax.process_count(), 1)
    return (int(available * fraction / max(devices, 1)),
            f"{fraction:.0%} of the host's {available / 2**30:.1f} GiB available, over "
            f"{devices} CPU device(s)")


def _host_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def decide(setting, store: FeatureStore, clips: np.ndarray, mesh: Mesh, *,
           fraction: float) -> Tuple[bool, str]:
    """(place the features on the devices?, a one-line reason when a request falls back).

    `setting` is `config.train.resident`: False streams; True and 'auto' place the
    table when one device's share fits `fraction` of its memory, and otherwise stream
    with the reason (never an out-of-memory crash). 'auto' also streams on CPU devices,
    where the batches are already in the host's memory and the measured gain is small
    (BUILD_NOTES, issue 25); True places it there too."""
    if setting != "auto" and not setting:
        return False, ""
    if setting == "auto" and mesh.devices.reshape(-1)[0].platform == "cpu":
        return False, ""
    rows = table_rows(len(clips), mesh)
    per_row = int(np.prod(store.features.shape[1:])) * store.features.dtype.itemsize
    need = rows // mesh.shape[parallel.DATA_AXIS] * per_row
    budget, of_what = device_budget(mesh, fraction)
    if need > budget:
        return False, (f"train.resident: the features need {need / 2**30:.2f} GiB per device, "
                       f"more than train.resident_memory_fraction allows ({of_what}); "
                       f"streaming batches from the host instead")
    return True, ""


def place(store: FeatureStore, clips: np.ndarray, mesh: Mesh) -> Table:
    """The features of store clips `clips` on the mesh, split by row over 'data'. Each
    process reads from the (memory-mapped) cache only the rows its devices hold.
    `clips` are sorted and distinct (`needed_clips`), so each read is in file order."""
    clips = np.asarray(clips, dtype=np.int64)
    assert np.all(np.diff(clips) > 0), "clips must be sorted and distinct"
    rows = table_rows(clips.size, mesh)
    shape = (rows,) + tuple(store.features.shape[1:])
    dtype = store.features.dtype

    def rows_of(index) -> np.ndarray:
        first, stop, _ = index[0].indices(rows)
        out = np.zeros((stop - first,) + shape[1:], dtype)
        real = clips[first:min(stop, clips.size)]
        if real.size:
            out[:real.size] = store.features[real]
        return out

    features = jax.make_array_from_callback(shape, NamedSharding(mesh, P(parallel.DATA_AXIS)),
                                            rows_of)
    row_of_clip = np.full(len(store), -1, dtype=np.int32)
    row_of_clip[clips] = np.arange(clips.size, dtype=np.int32)
    return Table(features=features, row_of_clip=row_of_clip)


def window_indices(table: Table, store: FeatureStore, segs: pipeline.Segments,
                   order: np.ndarray) -> Dict[str, np.ndarray]:
    """What the devices need to cut the batches of `order` (`pipeline.batch_order`'s
    `(steps, batch)` segment indices, -1 = padding): per window its table row (-1 for
    padding), start, label, mask — and, for evaluation on the host, its store clip."""
    valid = order >= 0
    safe = np.where(valid, order, 0)
    clips = segs.clip[safe]
    return {"row": np.where(valid, table.row_of_clip[clips], -1).astype(np.int32),
            "start": np.where(valid, segs.start[safe], 0).astype(np.int32),
            "labels": np.where(valid, store.labels[clips], 0).astype(np.int32),
            "mask": valid.astype(np.float32),
            "clip_index": np.where(valid, clips, -1).astype(np.int32)}


def cut(features: jax.Array, rows: jax.Array, starts: jax.Array, *, length: int,
        mesh: Mesh) -> jax.Array:
    """Inside a jitted function: the float32 windows `features[rows[i], ..., starts[i]:
    starts[i] + length]` as a batch split over 'data'; row -1 gives zeros (padding).
    `rows` and `starts` are replicated; each device cuts the windows of its own clips."""
    def local(table, rows, starts):
        n = table.shape[0]
        here = rows - lax.axis_index(parallel.DATA_AXIS) * n
        inside = (here >= 0) & (here < n)
        windows = jax.vmap(lambda r, s: lax.dynamic_slice_in_dim(table[r], s, length, axis=-1))(
            jnp.clip(here, 0, n - 1), starts)
        windows = jnp.where(inside.reshape((-1,) + (1,) * (windows.ndim - 1)),
                            windows.astype(jnp.float32), jnp.float32(0))
        return lax.psum_scatter(windows, parallel.DATA_AXIS, scatter_dimension=0, tiled=True)

    return jax.shard_map(local, mesh=mesh, in_specs=(P(parallel.DATA_AXIS), P(), P()),
                         out_specs=P(parallel.DATA_AXIS))(features, rows, starts)


def needed_clips(parts: Dict[str, pipeline.Segments]) -> np.ndarray:
    """The store clips the parts' windows come from, sorted."""
    return np.unique(np.concatenate([segs.clip for segs in parts.values()] or
                                    [np.zeros(0, np.int64)]))
