"""Seeds as a batch dimension (`config.seeds` with `config.train.vectorize_seeds`): the
seeds of one cell trained as one program over a leading seed axis of the train state,
so N seeds cost one compile and one dispatch per step instead of N: `jax.vmap` on
accelerators; on XLA's CPU backend, where vmapped convolutions ran several times
slower, the seeds' steps written out one after another (`dispatch.each_seed`).

Each seed keeps everything a separate run has: its own initial weights and step keys
(from its seed), its own batch order and crops (from (seed, epoch)), its own
validation, best-epoch selection and checkpoints in `<workdir>/seed_<k>/`, so the
outputs are a separate run's. The split, the prepared features and a resident table
are shared. What differs from separate runs is float rounding: XLA computes a vmapped
convolution as one grouped convolution, which sums in another order, and fuses the
seeds' steps as one program (tests/test_vectorized.py states and checks the tolerance).

Resume is per epoch, as `train.train`: each seed resumes at its newest checkpoint.
Every seed saves at the epochs any of them must (a new best of one is a save of all),
so after a kill they resume at the same epoch, as one program, and end bit-identical
to an uninterrupted run. Seeds that resume at different epochs (a kill between two
seeds' saves; a seed added to `config.seeds` later) are trained as one program per
epoch reached, one after the other: nothing trained is thrown away, and each seed
ends within the float tolerance above of an uninterrupted run.
"""

from __future__ import annotations

import time
from typing import List, Sequence

import jax

from jaxgenre import checkpoint, compile_cache, parallel
from jaxgenre.data.prepare import PreparedData
from jaxgenre.training import dispatch, train as train_lib
from jaxgenre.training.dispatch import member, stack


def train_seeds(configs: Sequence, data: PreparedData, model, *, workdirs: Sequence[str],
                writers: Sequence) -> List[train_lib.Trained]:
    """`train.train` for every config of `configs` (the same but for `seed`) at once,
    each seed writing into its `workdirs[i]` through `writers[i]`."""
    config, count = configs[0], len(configs)
    setup = train_lib.create_setup(config, data, model)
    replicated = parallel.replicated(setup.mesh)
    fresh = [train_lib.initial_state(c, data, model, setup, w.warn)
             for c, w in zip(configs, writers)]
    feed = train_lib.create_feed(config, data, model, setup, writers[0].warn, seeds=True)
    writers[0].say(f"{feed.description}; {count} seeds trained as one program")
    ckpts = [checkpoint.Checkpoints(workdir, keep=config.train.keep, warn=writer.warn,
                                    use_async=config.train.async_checkpoints)
             for workdir, writer in zip(workdirs, writers)]
    abstract = checkpoint.abstract(jax.device_put(fresh[0][0], replicated))
    states, records = [], []
    for ckpt, (state, _), writer in zip(ckpts, fresh, writers):
        state, record = ckpt.restore_latest(abstract) or (
            jax.device_put(state, replicated), dict(train_lib.NEW_RECORD))
        writer.starts_at(record["epoch"], step=int(jax.device_get(state.step)))
        states.append(state)
        records.append(record)
    reached = sorted({record["epoch"] for record in records})
    if len(reached) > 1:
        writers[0].warn("the seeds resume at different epochs (" + ", ".join(
            f"seed {c.seed} at {r['epoch']}" for c, r in zip(configs, records)) + f"): trained "
            f"as {len(reached)} programs, one per epoch reached, each seed within float "
            f"rounding of a run trained in one")
    histories = [[] for _ in configs]
    for epoch in reached:
        group = [i for i, record in enumerate(records) if record["epoch"] == epoch]
        last, ended = _train_group(
            [configs[i] for i in group], data, feed, setup, stack([states[i] for i in group]),
            [records[i] for i in group], [ckpts[i] for i in group],
            [writers[i] for i in group], [histories[i] for i in group])
        for position, i in enumerate(group):
            states[i], records[i] = member(last, position), ended[position]
    out = []
    for i, ckpt in enumerate(ckpts):
        best = ckpt.restore_best(abstract)
        ckpt.close()
        out.append(train_lib.Trained(
            state=states[i], best_state=best[0] if best else states[i],
            history=histories[i], initialisation=fresh[i][1], epochs=setup.n_epochs,
            best_valid_accuracy=records[i]["best_valid_accuracy"], steps=setup.steps,
            feed=feed))
    return out


def _train_group(configs, data: PreparedData, feed, setup, state, records: List[dict],
                 ckpts, writers, histories: List[list]):
    """The seeds of `configs`, all resuming after `records[0]['epoch']`, trained as one
    program to the last epoch from their stacked `state`, each epoch's line appended to
    its `histories[i]`: (the stacked state after the last epoch, the seeds' records)."""
    count, records = len(configs), list(records)
    batch_size, log_every = configs[0].train.batch_size, configs[0].train.log_every
    seeds = [c.seed for c in configs]
    for epoch in range(records[0]["epoch"], setup.n_epochs):
        start, compiled = time.perf_counter(), compile_cache.CLOCK.read()
        segs = [train_lib.epoch_segments(c, data, epoch) for c in configs]
        state, totals = train_lib.train_epoch(
            feed, state, stack([dispatch.zero_sums(setup.mesh)] * count),
            feed.seeds_epoch(segs, batch_size=batch_size, seeds=seeds, epoch=epoch),
            writers=writers, epoch=epoch, setup=setup, batch_size=batch_size,
            log_every=log_every, start=start)
        # Each seed's line: its own figures; seconds and compile seconds are the epoch's
        # (every seed's steps) up to its own validation.
        improved_by_seed = []
        for i in range(count):
            line, records[i], improved = train_lib.end_epoch(
                configs[i], data, feed, member(state, i), member(totals, i), records[i],
                epoch=epoch, steps_per_epoch=setup.steps_per_epoch, start=start,
                compiled=compiled)
            histories[i].append(line)
            writers[i].epoch(line)
            improved_by_seed.append(improved)
        # one seed's save is every seed's, so that all resume at the same epoch
        if any(train_lib.save_due(c, epoch, setup.n_epochs, improved)
               for c, improved in zip(configs, improved_by_seed)):
            for i, improved in enumerate(improved_by_seed):
                ckpts[i].save(member(state, i), records[i], best=improved, rank=epoch + 1)
    return state, records
