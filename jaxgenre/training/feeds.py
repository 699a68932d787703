"""How batches reach the steps: streamed from the host, or cut on the devices from a
resident table (`config.train.resident`), one step or `config.train.steps_per_dispatch`
steps per dispatch. Every path trains on the same windows in the same order and
evaluates the same windows; `train.train` and `experiments.run_one` see one interface.

    feed = create(config, store, parts, mesh, steps, compile_dispatch, warn)
    for n_steps, xs in feed.epoch(segs, batch_size=..., seed=..., epoch=...):
        state, sums, losses = feed.train(state, sums, xs)
    report = feed.evaluate(state, segs, batch_size=..., clip_mean=...)
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import jax
import numpy as np
from jax.sharding import Mesh

from jaxgenre.data import pipeline, prefetch, resident
from jaxgenre.data.cache import FeatureStore
from jaxgenre.training import dispatch as dispatch_lib, evaluate, steps as steps_lib


@dataclasses.dataclass
class Feed:
    """`table` None: host batches (prefetched); otherwise window indices into it.
    `dispatch` None: one step per dispatch through `steps` (the path runs had before
    issue 25, kept as it was)."""
    store: FeatureStore
    mesh: Mesh
    steps: steps_lib.Steps
    dispatch: Optional[dispatch_lib.Dispatch]
    table: Optional[resident.Table]
    steps_per_dispatch: int
    prefetch: int

    @property
    def description(self) -> str:
        where = (f"resident on the devices ({self.table.bytes / 2**20:.0f} MiB)"
                 if self.table else "streamed from the host")
        text = f"batches {where}, {self.steps_per_dispatch} step(s) per dispatch"
        if self.table and jax.process_count() > 1:  # each process read only its own rows
            rows = self.table.features.shape[0]
            held = sorted({r for shard in self.table.features.addressable_shards
                           for r in range(*shard.index[0].indices(rows))})
            text += (f"; process {jax.process_index()} holds table rows {held[0]}..{held[-1]}"
                     f" of {rows}")
        return text

    def epoch(self, segs: pipeline.Segments, *, batch_size: int, seed: int,
              epoch: int) -> Iterator[Tuple[int, object]]:
        """(steps, inputs of one dispatch) for every dispatch of the epoch."""
        k = self.steps_per_dispatch
        if self.table is None:
            batches = pipeline.iterate_batches(self.store, segs, batch_size=batch_size,
                                               seed=seed, epoch=epoch, train=True)
            if self.dispatch is None:
                for batch in prefetch.prefetch_to_mesh(batches, self.mesh, size=self.prefetch):
                    yield 1, batch
                return
            for stacked in prefetch.prefetch_to_mesh(_stacks(batches, k), self.mesh,
                                                     size=self.prefetch, axis=1):
                yield len(stacked["mask"]), stacked
            return
        order = pipeline.train_order(len(segs), batch_size=batch_size, seed=seed, epoch=epoch)
        windows = resident.window_indices(self.table, self.store, segs, order)
        for first in range(0, order.shape[0], k):
            yield min(k, order.shape[0] - first), self._indices(windows, first, k)

    def seeds_epoch(self, segs: Sequence[pipeline.Segments], *, batch_size: int,
                    seeds: Sequence[int], epoch: int) -> Iterator[Tuple[int, object]]:
        """`epoch` for several seeds at once (`training.vectorized`): (steps, every
        seed's inputs of one dispatch stacked on a new leading axis); `segs[i]` are
        seed `seeds[i]`'s windows. Needs a feed made with `seeds=True`."""
        if self.dispatch is None or len({len(s) for s in segs}) != 1:
            raise ValueError("seeds_epoch needs a feed made with seeds=True and as many "
                             f"windows for every seed (got {[len(s) for s in segs]})")
        k = self.steps_per_dispatch
        if self.table is None:
            groups = [_stacks(pipeline.iterate_batches(self.store, s, batch_size=batch_size,
                                                       seed=seed, epoch=epoch, train=True), k)
                      for s, seed in zip(segs, seeds)]
            stacked = ({key: np.stack([g[key] for g in group]) for key in group[0]}
                       for group in zip(*groups))
            for xs in prefetch.prefetch_to_mesh(stacked, self.mesh, size=self.prefetch,
                                                axis=2):
                yield xs["mask"].shape[1], xs
            return
        order = lambda s, seed: pipeline.train_order(len(s), batch_size=batch_size, seed=seed,
                                                     epoch=epoch)
        windows = [resident.window_indices(self.table, self.store, s, order(s, seed))
                   for s, seed in zip(segs, seeds)]
        stacked = {key: np.stack([w[key] for w in windows]) for key in windows[0]}
        steps = stacked["mask"].shape[1]
        for first in range(0, steps, k):
            yield min(k, steps - first), self._indices(stacked, first, k, axis=1)

    def train(self, state, sums, xs):
        """(state, sums, the loss of each step, or of the one step) after the dispatch."""
        if self.dispatch is None:
            state, metrics = self.steps.train(state, xs)
            return state, dispatch_lib.add_sums(sums, metrics), metrics["loss"]
        table = self.table.features if self.table else None
        return self.dispatch.train(state, sums, table, xs)

    def probabilities(self, state, segs: pipeline.Segments, *, batch_size: int
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probabilities, labels, clip_index) of every window of `segs`, in order."""
        if self.table is None:
            return evaluate.segment_probabilities(self.steps.predict, state, self.store, segs,
                                                  batch_size=batch_size, mesh=self.mesh)
        k = self.steps_per_dispatch
        order = pipeline.batch_order(len(segs), batch_size=batch_size, seed=0, epoch=0,
                                     shuffle=False, drop_remainder=False)
        steps = -(-order.shape[0] // k) * k  # whole dispatches: one compiled shape
        order = np.concatenate([order, np.full((steps - order.shape[0], batch_size), -1)])
        windows = resident.window_indices(self.table, self.store, segs, order)
        outs = [self.dispatch.predict(state, self.table.features, self._indices(windows, i, k))
                for i in range(0, steps, k)]
        probs = np.concatenate([np.asarray(jax.device_get(o)) for o in outs])
        keep = windows["mask"].reshape(-1) > 0
        return (probs.reshape(-1, probs.shape[-1])[keep], windows["labels"].reshape(-1)[keep],
                windows["clip_index"].reshape(-1)[keep])

    def evaluate(self, state, segs: pipeline.Segments, *, batch_size: int,
                 clip_mean: str = "probability") -> Dict:
        """`evaluate.report` of `segs` (segment and clip level, per-clip arrays)."""
        probs, labels, clips = self.probabilities(state, segs, batch_size=batch_size)
        return evaluate.report(probs, labels, clips, self.store.class_names,
                               clip_mean=clip_mean)

    def _indices(self, windows: Dict[str, np.ndarray], first: int, k: int,
                 axis: int = 0) -> Dict:
        """Steps `first`..`first + k` of `windows` (on `axis`), on every device."""
        replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        cut = (slice(None),) * axis + (slice(first, first + k),)
        return {key: jax.make_array_from_process_local_data(replicated, value[cut])
                for key, value in windows.items() if key != "clip_index"}


def _stacks(batches: Iterator[Dict[str, np.ndarray]], k: int) -> Iterator[Dict]:
    """Host batches in groups of `k` (the last may be shorter), stacked on a new axis 0."""
    group = []
    for batch in batches:
        group.append(batch)
        if len(group) == k:
            yield {key: np.stack([b[key] for b in group]) for key in group[0]}
            group = []
    if group:
        yield {key: np.stack([b[key] for b in group]) for key in group[0]}


def create(config, store: FeatureStore, parts: Dict[str, pipeline.Segments], mesh: Mesh,
           steps: steps_lib.Steps,
           compile_dispatch: Callable[[Optional[int]], dispatch_lib.Dispatch],
           warn: Callable[[str], None], *, seeds: bool = False) -> Feed:
    """The feed `config.train` asks for: `resident` ('auto' | True | False; a table
    that does not fit falls back to streaming with `warn`'s one line) and
    `steps_per_dispatch`. `compile_dispatch(window_length or None)` builds the scans;
    `seeds`: they map over seeds (`seeds_epoch`), always built."""
    train = config.train
    clips = resident.needed_clips(parts)
    place, reason = resident.decide(train.resident, store, clips, mesh,
                                    fraction=train.resident_memory_fraction)
    if reason:
        warn(reason)
    k = train.steps_per_dispatch
    table = resident.place(store, clips, mesh) if place else None
    dispatch = (compile_dispatch(parts["train"].length if table else None)
                if table or k > 1 or seeds else None)
    return Feed(store=store, mesh=mesh, steps=steps, dispatch=dispatch, table=table,
                steps_per_dispatch=k, prefetch=train.prefetch)
