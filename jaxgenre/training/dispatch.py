"""Many steps per dispatch: `lax.scan` over `config.train.steps_per_dispatch` train (or
predict) steps in one jitted call, with the epoch's metric sums carried on the device.

One Python dispatch per step costs little next to a big step on a CPU, but next to a
millisecond step on an accelerator the host's dispatch, the batch's copy and the
metrics' round trips dominate (issue 25). Scanning K steps removes K - 1 of each.

Each step inside the scan is `steps.train_step` itself, on the same batch, with the
same keys (`fold_in(state.rng, state.step)`), and the metric sums are carried in the
order the one-step loop adds them, so the scan computes what K dispatches compute —
up to XLA compiling K steps as one program, which may fuse differently
(tests/test_resident.py checks the difference). On XLA's CPU backend the K steps are
written out (`unroll`) rather than looped: a step inside the loop ran 25-57x slower.

The batches come either from the host (stacked: `(K, batch, ...)` split over 'data'
on axis 1) or, with a resident table (`data.resident`), as `(K, batch)` window
indices that each step cuts from the table on the devices.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Dict, Optional

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgenre import parallel
from jaxgenre.data import resident
from jaxgenre.training import augment as augment_lib, steps as steps_lib

Sums = Dict[str, jax.Array]  # loss, correct, count summed over the epoch's steps so far


def zero_sums(mesh: Mesh) -> Sums:
    """Zeroed sums, replicated on `mesh` as the scans return them (unplaced, a scan's
    second call would see another input type and compile again)."""
    sums = {k: jnp.zeros((), jnp.float32) for k in ("loss", "correct", "count")}
    return jax.device_put(sums, parallel.replicated(mesh))


def add_sums(sums: Sums, metrics: Sums) -> Sums:
    return {k: sums[k] + metrics[k].astype(jnp.float32) for k in sums}


def resident_batch(table: jax.Array, x: Dict[str, jax.Array], *, length: int,
                   mesh: Mesh) -> steps_lib.Batch:
    """The batch of window indices `x` (one step's `resident.window_indices` rows):
    windows cut from `table`, labels and mask split over 'data' as a host batch's are."""
    split = lambda a: lax.with_sharding_constraint(a, parallel.batch_sharding(mesh))
    return {"inputs": resident.cut(table, x["row"], x["start"], length=length, mesh=mesh),
            "labels": split(x["labels"]), "mask": split(x["mask"])}


def train_many(state, sums: Sums, table, xs, *, step: Callable, make_batch: Callable,
               unroll: bool = False):
    """`len(xs)` train steps in a scan (`unroll`: written out, no loop): (state, sums +
    their metrics, each step's loss)."""
    def body(carry, x):
        state, sums = carry
        state, metrics = step(state, make_batch(table, x))
        return (state, add_sums(sums, metrics)), metrics["loss"]

    if jax.tree.leaves(xs)[0].shape[0] == 1:  # one step: no loop for XLA to compile
        (state, sums), loss = body((state, sums), jax.tree.map(lambda a: a[0], xs))
        return state, sums, loss[None]
    (state, sums), losses = lax.scan(body, (state, sums), xs, unroll=unroll or 1)
    return state, sums, losses


def predict_many(state, table, xs, *, predict: Callable, make_batch: Callable,
                 unroll: bool = False) -> jax.Array:
    """Class probabilities `(K, batch, classes)` of `K` batches in a scan."""
    return lax.scan(lambda _, x: (None, predict(state, make_batch(table, x))), None, xs,
                    unroll=unroll or 1)[1]


def stack(trees) -> object:
    """One pytree whose leaves are the trees' leaves stacked on a new axis 0 (the
    seeds' states, sums or inputs of `training.vectorized`)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def member(tree, index: int):
    """Seed `index`'s pytree out of a stacked one."""
    return jax.tree.map(lambda leaf: leaf[index], tree)


def each_seed(many: Callable) -> Callable:
    """`many` over a leading seed axis of (state, sums, -, xs) as one program, the seeds'
    steps written out one after another. For XLA's CPU backend, where `jax.vmap`'s
    grouped convolutions (one kernel per seed) ran the seeds' steps 1.5x slower than
    apart (BUILD_NOTES.md, "Vectorised seeds, timed"): written out, each seed's step is
    its separate run's."""
    def train_many_each_seed(state, sums, table, xs):
        return stack([many(member(state, i), member(sums, i), table, member(xs, i))
                      for i in range(jax.tree.leaves(state)[0].shape[0])])
    return train_many_each_seed


@dataclasses.dataclass(frozen=True)
class Dispatch:
    """The jitted many-step functions, with or without a resident table:
    train(state, sums, table, xs) -> (state, sums, losses); predict(state, table, xs)
    -> probabilities. `table` is None when the batches come from the host."""
    train: Optional[Callable]
    predict: Callable
    resident: bool


def compile_dispatch(model, tx, adapt: Callable, mesh: Mesh,
                     augmentation: augment_lib.Augmentation = augment_lib.Augmentation(), *,
                     window_length: Optional[int] = None, seeds: bool = False) -> Dispatch:
    """The scanned steps jitted over `mesh`, state replicated and donated. With
    `window_length` the inputs are window indices into a resident table (rows split
    over 'data', indices replicated); without, stacked host batches split on axis 1.
    With `seeds`, `train` maps over a leading seed axis of the state, the sums and the
    inputs (`training.vectorized`; the table is shared), so the inputs' batch axis is
    one further: `jax.vmap`, or on the CPU backend `each_seed`; `predict` still takes
    one seed's state."""
    replicated = parallel.replicated(mesh)
    # XLA's CPU backend runs a train step inside a loop 25-57x slower than alone
    # (BUILD_NOTES.md, "The benchmark"): there the K steps are written out instead.
    unroll = mesh.devices.flat[0].platform == "cpu"
    if window_length is None:
        make_batch = lambda table, x: x
        table_sharding = replicated
        xs_sharding = out_sharding = NamedSharding(mesh, P(None, parallel.DATA_AXIS))
        train_xs = NamedSharding(mesh, P(*[None] * (1 + seeds), parallel.DATA_AXIS))
    else:
        make_batch = functools.partial(resident_batch, length=window_length, mesh=mesh)
        table_sharding = NamedSharding(mesh, P(parallel.DATA_AXIS))
        xs_sharding = out_sharding = train_xs = replicated
    step = functools.partial(steps_lib.train_step, model=model, tx=tx, adapt=adapt,
                             augmentation=augmentation)
    many = functools.partial(train_many, make_batch=make_batch, unroll=unroll, step=step)
    if seeds:
        many = each_seed(many) if unroll else jax.vmap(many, in_axes=(0, 0, None, 0))
    train = None if tx is None else jax.jit(
        many, in_shardings=(replicated, replicated, table_sharding, train_xs),
        out_shardings=(replicated, replicated, replicated), donate_argnums=(0, 1))
    predict = functools.partial(steps_lib.predict_step, model=model, adapt=adapt)
    predict = jax.jit(
        functools.partial(predict_many, make_batch=make_batch, unroll=unroll, predict=predict),
        in_shardings=(replicated, table_sharding, xs_sharding), out_shardings=out_sharding)
    return Dispatch(train=train, predict=predict, resident=window_length is not None)
