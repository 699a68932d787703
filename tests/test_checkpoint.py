"""Checkpoints: keep the last K and the best; a damaged latest falls back to the previous."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgenre import checkpoint
from jaxgenre import steps as steps_lib


def _state(step, value):
    return steps_lib.TrainState(step=jnp.asarray(step, jnp.int32), params={"w": jnp.full(3, value)},
                            batch_stats={}, opt_state={"m": jnp.zeros(3)},
                            rng=jnp.zeros(2, jnp.uint32))


def test_last_k_best_and_fallback_from_a_damaged_checkpoint(tmp_path):
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=2)
    # Validation accuracy 0.3, 0.6, 0.5: epochs 1 and 2 improve, epoch 3 does not.
    for step, best_so_far, improved in ((1, 0.3, True), (2, 0.6, True), (3, 0.6, False)):
        ckpt.save(_state(step, float(step)), {"epoch": step, "best_valid_accuracy": best_so_far},
                  best=improved)
    ckpt.close()
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=2)
    assert ckpt.last.all_steps() == [2, 3]
    template = checkpoint.abstract(_state(0, 0.0))
    state, record = ckpt.restore_latest(template)
    assert int(state.step) == 3 and record["epoch"] == 3
    best, _ = ckpt.restore_best(template)
    np.testing.assert_array_equal(best.params["w"], [2.0, 2.0, 2.0])

    # Damage every file of the newest checkpoint's state.
    for folder, _, files in os.walk(tmp_path / "checkpoints" / "last" / "3" / "state"):
        for name in files:
            with open(os.path.join(folder, name), "wb") as f:
                f.write(b"\0")
    with pytest.warns(UserWarning, match="checkpoint 3 .* cannot be restored"):
        state, record = ckpt.restore_latest(template)
    assert int(state.step) == 2 and record["epoch"] == 2
    ckpt.close()
