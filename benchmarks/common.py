"""What the training benchmarks share: a model's train state and jitted steps on a mesh
(Adam at the study's 1e-3, as `configs/base.py`), and a random batch placed on it."""

from __future__ import annotations

import functools
import time
from typing import Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from configs import base
from jaxgenre import models, parallel
from jaxgenre.training import augment, steps as steps_lib
from jaxgenre.models import adapter


def feature_adapter(model_name: str) -> Callable:
    """Cached features (batch, rows, frames) → the model's NHWC input, as training does."""
    return functools.partial(adapter.adapt, channels=models.get_spec(model_name).channels)


def setup(model_name: str, input_shape: Tuple[int, ...], mesh: Mesh, *,
          adapt: Optional[Callable] = None, dtype: str = "float32",
          augmentation: Optional[augment.Augmentation] = None
          ) -> Tuple[steps_lib.TrainState, steps_lib.Steps]:
    """A replicated train state for one example of `input_shape` (after `adapt`, if
    given, which the steps then apply to every batch) and the steps compiled for `mesh`,
    with `augmentation` in the train step if given."""
    model_config = base.with_defaults({"model": {"name": model_name, "dtype": dtype}}).model
    model = models.create(model_name, 10, **models.constructor_options(model_config))
    optim = base.with_defaults({"optim": {"name": "adam", "learning_rate": 1e-3,
                                          "weight_decay": 0.0, "schedule": "constant"}}).optim
    tx = steps_lib.create_optimizer(optim, 100)
    adapt = adapt or (lambda x: x)
    sample = adapt(jnp.zeros((1, *input_shape)))
    state = steps_lib.create_train_state(jax.random.PRNGKey(0), model, tx, sample)
    state = jax.device_put(state, parallel.replicated(mesh))
    return state, steps_lib.compile_steps(model, tx, adapt, mesh,
                                          augmentation or augment.Augmentation())


def random_batch(batch: int, input_shape: Tuple[int, ...], mesh: Mesh):
    """Gaussian inputs, label 0, every row counted; split over the mesh."""
    data = {"inputs": np.random.default_rng(0).standard_normal((batch, *input_shape))
            .astype(np.float32),
            "labels": np.zeros(batch, np.int32), "mask": np.ones(batch, np.float32)}
    return jax.device_put(data, parallel.batch_sharding(mesh))


def images_per_second(step: Callable, state, batch: int, steps: int) -> float:
    """Throughput of `state, out = step(state)` on batches of `batch` images: one
    warm-up call (compiling), then `steps` timed calls, ended by `block_until_ready`."""
    state, out = step(state)
    jax.block_until_ready(out)
    start = time.perf_counter()
    for _ in range(steps):
        state, out = step(state)
    jax.block_until_ready(out)
    return batch * steps / (time.perf_counter() - start)


def ms_per_call(call: Callable[[], object], repeats: int) -> float:
    """Milliseconds per `call()`: one warm-up call, then the mean of `repeats` calls.
    `call` must finish its work before returning (JAX: `block_until_ready`)."""
    call()
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats * 1e3


def measure(fn, *args, repeats: int):
    """(ms per call, XLA GFLOP) of `jax.jit(fn)(*args)`: compiled and run once first,
    then the mean of `repeats` calls."""
    jitted = jax.jit(fn)
    cost = jitted.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    ms = ms_per_call(lambda: jax.block_until_ready(jitted(*args)), repeats)
    return ms, float(cost["flops"]) / 1e9


def conv_nhwc(x, kernel, *, stride: int = 1, padding: int):
    """A plain 2-D convolution (NHWC input, HWIO kernel, symmetric zero padding), as
    torch's conv2d computes it: the layer the convolution benchmarks time."""
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride),
                                        ((padding, padding), (padding, padding)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
