"""From cached features to device batches: segments, seeded shuffling, fixed-size
batches with a mask, and placement sharded over the devices of a mesh.

Everything here is a pure function of its arguments — the batches of epoch `e` are
fixed by (seed, e) — so a run that stops can resume at any step by asking for the
same epoch again and skipping ahead (`start_step`).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterator, Optional

import jax
import numpy as np
from jax.sharding import Mesh

from jaxgenre import parallel
from jaxgenre.data.cache import FeatureStore
from jaxgenre.errors import UserError


@dataclasses.dataclass(frozen=True)
class Segments:
    """Windows over the last (time) axis of the cached features: segment `i` is
    `features[clip[i], ..., start[i]:start[i] + length]`. Without segmenting, one
    segment per clip covers the whole clip. Every segment keeps its clip's index, so a
    split made on clips never separates a clip's segments, and evaluation can vote."""
    clip: np.ndarray  # (n,) index into the FeatureStore
    start: np.ndarray  # (n,) first frame (or sample, for waveforms)
    length: int

    def __len__(self) -> int:
        return int(self.clip.size)


def segments(clip_indices: np.ndarray, n_frames: int, *, segment_frames: Optional[int] = None,
             hop_frames: Optional[int] = None) -> Segments:
    """All windows of `segment_frames` every `hop_frames` (default: no overlap) inside
    each clip's `n_frames` frames (samples, for waveforms); `segment_frames=None` means
    whole clips."""
    clip_indices = np.asarray(clip_indices, dtype=np.int64)
    if segment_frames is None or segment_frames >= n_frames:
        return Segments(clip_indices, np.zeros_like(clip_indices), n_frames)
    hop = hop_frames or segment_frames
    if segment_frames < 1 or hop < 1:
        raise UserError(f"segments need positive lengths, got segment={segment_frames}, "
                         f"hop={hop} frames")
    starts = np.arange(0, n_frames - segment_frames + 1, hop)
    return Segments(np.repeat(clip_indices, starts.size), np.tile(starts, clip_indices.size),
                    segment_frames)


def random_crops(segs: Segments, n_frames: int, *, seed: int, epoch: int,
                 per_clip: Optional[int] = None) -> Segments:
    """One epoch's training windows with random positions: `per_clip` windows of
    `segs.length` per clip of `segs` (default: as many as `segs` has, e.g. the ten fixed
    3 s tiles of a 30 s clip), each starting anywhere in the clip, uniformly. Drawn on
    the host from (seed, epoch) — a pure function, so a resumed run cuts the same crops."""
    clips, counts = np.unique(segs.clip, return_counts=True)
    if per_clip is None:
        per_clip = int(round(counts.mean())) if clips.size else 0
    if per_clip < 1:
        raise UserError(f"augment.crops_per_clip must be at least 1, got {per_clip}")
    rng = np.random.default_rng([seed, epoch, 0xC0])  # a stream apart from batch_order's
    starts = rng.integers(0, max(n_frames - segs.length, 0) + 1, size=clips.size * per_clip)
    return Segments(np.repeat(clips, per_clip), starts.astype(np.int64), segs.length)


def overlap_hop(segment_frames: int, overlap: float) -> int:
    """The hop between windows of `segment_frames` that overlap by the fraction `overlap`
    (`config.eval.window_overlap`): evaluation and `predict` cut test windows with it."""
    return max(1, int(round(segment_frames * (1 - overlap))))


def batch_order(n: int, *, batch_size: int, seed: int, epoch: int, shuffle: bool,
                drop_remainder: bool) -> np.ndarray:
    """`(steps, batch_size)` segment indices for one epoch; -1 marks padding.

    Training shuffles with (seed, epoch) and drops the last partial batch; evaluation
    keeps order and pads the last batch, so every segment is seen exactly once and
    every batch has the one compiled shape.
    """
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    if drop_remainder:
        steps = n // batch_size
        return order[:steps * batch_size].reshape(steps, batch_size)
    steps = -(-n // batch_size)
    padded = np.full(steps * batch_size, -1, dtype=np.int64)
    padded[:n] = order
    return padded.reshape(steps, batch_size)


def train_order(n: int, *, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """One training epoch's `batch_order` (shuffled, remainder dropped); fewer segments
    than one batch is a `UserError` naming the fix."""
    order = batch_order(n, batch_size=batch_size, seed=seed, epoch=epoch, shuffle=True,
                        drop_remainder=True)
    if order.shape[0] == 0:
        raise UserError(f"only {n} training segments: fewer than one batch of "
                        f"{batch_size}; lower train.batch_size or add data")
    return order


def gather(store: FeatureStore, segs: Segments, rows: np.ndarray) -> Dict[str, np.ndarray]:
    """The batch for segment indices `rows` (-1 = padding: zeros, mask 0)."""
    valid = rows >= 0
    safe = np.where(valid, rows, 0)
    clips, starts = segs.clip[safe], segs.start[safe]
    inputs = np.stack([store.features[c, ..., s:s + segs.length] for c, s in zip(clips, starts)])
    inputs[~valid] = 0.0
    return {"inputs": inputs.astype(np.float32, copy=False),
            "labels": np.where(valid, store.labels[clips], 0).astype(np.int32),
            "mask": valid.astype(np.float32),
            "clip_index": np.where(valid, clips, -1).astype(np.int32)}


def iterate_batches(store: FeatureStore, segs: Segments, *, batch_size: int, seed: int,
                    epoch: int, train: bool, start_step: int = 0,
                    process_index: Optional[int] = None,
                    process_count: Optional[int] = None) -> Iterator[Dict[str, np.ndarray]]:
    """Host batches of one epoch. With several processes, each loads only its own
    contiguous `batch_size / process_count` rows of every global batch."""
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if batch_size % process_count:
        raise UserError(f"batch_size {batch_size} must divide evenly over {process_count} "
                         f"processes")
    local = batch_size // process_count
    order = (train_order(len(segs), batch_size=batch_size, seed=seed, epoch=epoch) if train
             else batch_order(len(segs), batch_size=batch_size, seed=seed, epoch=epoch,
                              shuffle=False, drop_remainder=False))
    for rows in order[start_step:]:
        yield gather(store, segs, rows[process_index * local:(process_index + 1) * local])


def shard_batch(batch: Dict[str, np.ndarray], mesh: Mesh, *, axis: int = 0
                ) -> Dict[str, jax.Array]:
    """Places a host batch on the mesh (`parallel.data_mesh`), split along its batch
    axis over 'data': axis 0, or 1 for batches stacked `(steps, batch, ...)` for a
    many-step dispatch (`training.dispatch`).

    Each process passes its own rows; the result is one global array per key.
    """
    sharding = jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(*([None] * axis), parallel.DATA_AXIS))
    size = mesh.shape[parallel.DATA_AXIS]
    out = {}
    for key, value in batch.items():
        global_rows = value.shape[axis] * jax.process_count()
        if global_rows % size:
            raise UserError(f"a batch of {global_rows} rows cannot be split over {size} "
                             f"devices: make train.batch_size / eval.batch_size a multiple "
                             f"of {size}")
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out
