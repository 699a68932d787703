"""An exponential moving average of the weights (`config.optim.ema_decay`), for a
validation set too small to pick one epoch's weights from (issue 22): the average
moves slowly where one epoch's weights bounce, and validation, test and predict all
use it.

It is an optax transformation chained last, so the average lives in the optimiser
state: the train state, its checkpoints and a resumed run need nothing new, and a
run with another decay is another optimiser (refused on resume like any
`config.optim` change). The decay warms up as TensorFlow's `ExponentialMovingAverage`
with `num_updates` does, `min(decay, (1 + n) / (10 + n))` after n updates, so short runs
are not dominated by the initial weights. BatchNorm's running statistics are not
averaged: the model uses those of the current weights.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class EmaState(NamedTuple):
    count: jax.Array  # int32 scalar: updates so far
    ema: Any  # the averaged parameters


def decay_at(decay: float, count) -> jax.Array:
    """The decay the `count`-th update uses (1-based)."""
    count = jnp.asarray(count, jnp.float32)
    return jnp.minimum(decay, (1.0 + count) / (10.0 + count))


def params_ema(decay: float) -> optax.GradientTransformation:
    """Passes updates through unchanged and keeps `ema ← d·ema + (1 − d)·new params`,
    starting from the initial parameters. Chain it after the optimiser."""

    def init(params):
        # A copy (jnp.array), never the parameters' own buffers: the train step donates
        # the whole state, and one buffer donated twice is an error.
        return EmaState(count=jnp.zeros((), jnp.int32),
                        ema=jax.tree.map(lambda p: jnp.array(p, jnp.float32, copy=True), params))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("params_ema needs the parameters (optax's `params` argument)")
        count = state.count + 1
        d = decay_at(decay, count)
        new = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: d * e + (1.0 - d) * p.astype(jnp.float32),
                           state.ema, new)
        return updates, EmaState(count=count, ema=ema)

    return optax.GradientTransformation(init, update)


def evaluation_params(params, opt_state):
    """The weights to evaluate: the average when the optimiser keeps one (cast to the
    parameters' dtypes), else `params`."""
    if isinstance(opt_state, tuple) and opt_state and isinstance(opt_state[-1], EmaState):
        return jax.tree.map(lambda e, p: e.astype(p.dtype), opt_state[-1].ema, params)
    return params
