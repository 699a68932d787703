"""Checkpoints: keep the last K and the two best; a damaged checkpoint is moved aside
(named in one warning line) and the one before it used, and its step can be saved again."""

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


def _damage(folder):
    for path in folder.rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes()[:10])  # truncated


def test_a_damaged_step_is_moved_aside_and_can_be_saved_again(tmp_path):
    warnings = []
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=3, warn=warnings.append)
    for step in (1, 2, 3):
        ckpt.save(_state(step, float(step)), {"epoch": step, "best_valid_accuracy": step / 10},
                  best=True)
    ckpt.close()
    root = tmp_path / "checkpoints"
    _damage(root / "last" / "3")
    _damage(root / "best" / "3")
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=3, warn=warnings.append)
    template = checkpoint.abstract(_state(0, 0.0))
    state, record = ckpt.restore_latest(template)
    assert int(state.step) == 2 and record["epoch"] == 2
    best, _ = ckpt.restore_best(template)  # the second best of the two kept
    np.testing.assert_array_equal(best.params["w"], [2.0, 2.0, 2.0])
    moved = sorted(p.name for p in (root / "damaged").iterdir())
    assert [m.rsplit("_", 1)[0] for m in moved] == ["best_3", "last_3"]
    assert len(warnings) == 2 and all("\n" not in w and len(w) < 600 for w in warnings)
    assert "moved to " + str(root / "damaged" / moved[1]) in warnings[0]
    # The run goes on: step 3 is saved again (orbax refused an existing step before).
    ckpt.save(_state(3, 30.0), {"epoch": 3, "best_valid_accuracy": 0.3}, best=True)
    ckpt.close()
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=3, warn=warnings.append)
    state, _ = ckpt.restore_latest(template)
    np.testing.assert_array_equal(state.params["w"], [30.0, 30.0, 30.0])
    ckpt.close()
    assert len(warnings) == 2
    # predict's restore: the same fallback, or one line naming the folder when none is left.
    _damage(root / "best")
    with pytest.raises(ValueError, match="checkpoint.* in .*best.*new --workdir"):
        checkpoint.restore_best(str(tmp_path), template, warn=warnings.append)


def test_brief_keeps_the_first_line_of_long_errors():
    error = ValueError("cannot read step 3\n" + "{'driver': 'zarr', ...}" * 100)
    assert checkpoint.brief(error) == "ValueError: cannot read step 3"
    assert len(checkpoint.brief(ValueError("x" * 1000))) == 200


def test_a_damaged_best_is_read_from_the_same_step_in_last(tmp_path):
    warnings = []
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=3, warn=warnings.append)
    for step, improved in ((1, True), (2, True), (3, False)):
        ckpt.save(_state(step, float(step)), {"epoch": step, "best_valid_accuracy": 0.5},
                  best=improved)
    ckpt.close()
    _damage(tmp_path / "checkpoints" / "best" / "2" / "state")  # arrays only: opens, fails
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=3, warn=warnings.append)
    best, record = ckpt.restore_best(checkpoint.abstract(_state(0, 0.0)))
    ckpt.close()
    np.testing.assert_array_equal(best.params["w"], [2.0, 2.0, 2.0])  # not step 1's
    assert record["epoch"] == 2
    assert len(warnings) == 1 and "reading the same step in " in warnings[0]


def test_a_full_disk_is_found_before_writing_and_the_steps_before_stay(tmp_path, monkeypatch):
    import collections

    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=3)
    ckpt.save(_state(1, 1.0), {"epoch": 1, "best_valid_accuracy": 0.1}, best=True)
    ckpt.close()
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 5000))
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=3)
    with pytest.raises(ValueError, match=r"not enough free space for checkpoint 2 under "
                                         rf"{tmp_path / 'checkpoints'}: it needs about 1 MB, "
                                         r"0 MB are free.*run the same command again"):
        ckpt.save(_state(2, 2.0), {"epoch": 2, "best_valid_accuracy": 0.2}, best=True)
    state, record = ckpt.restore_latest(checkpoint.abstract(_state(0, 0.0)))
    ckpt.close()
    assert int(state.step) == 1 and record["epoch"] == 1
    assert sorted(os.listdir(tmp_path / "checkpoints" / "last")) == ["1"]  # nothing begun


def test_write_failures_are_recognised_in_orbax_and_tensorstore_errors():
    import errno

    tensorstore = ValueError("OUT_OF_RANGE: Error writing \"params.w/0\" ...: Failed to write "
                             "3597113 bytes to file 19: No space left on device "
                             "[os_error_code='28']")
    assert checkpoint.write_failure(tensorstore) == os.strerror(errno.ENOSPC)
    wrapped = RuntimeError("save failed")
    wrapped.__cause__ = OSError(errno.EDQUOT, "quota")
    assert checkpoint.write_failure(wrapped) == os.strerror(errno.EDQUOT)
    assert checkpoint.write_failure(ValueError("shapes differ")) is None
