"""Checkpoints: keep the last K and the two best; a damaged checkpoint is moved aside
(named in one warning line) and the one before it used, and its step can be saved again.
Restoring is not repairing: another model's checkpoint and a file the OS refuses are one
line with nothing moved, and predict's restore only reads."""

import contextlib
import os
import pathlib
import shutil
import tempfile

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgenre import checkpoint, errors
from jaxgenre.training import steps as steps_lib


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


def test_orbax_still_writes_the_files_the_checks_read(tmp_path):
    """The file names the damage checks read (`check.JSON_FILES`, orbax's and ours) are
    pinned in one place; this fails when an orbax upgrade moves or renames them."""
    import json

    from jaxgenre.checkpoint import check

    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=2, use_async=False)
    ckpt.save(_state(1, 1.0), {"epoch": 1, "best_valid_accuracy": 0.5}, best=True)
    ckpt.close()
    for kind in ("last", "best"):
        step = tmp_path / "checkpoints" / kind / "1"
        present = [name for name in check.JSON_FILES if (step / name).is_file()]
        expected = [n for n in check.JSON_FILES if kind == "best" or "metrics" not in n]
        assert present == expected, (kind, sorted(str(p.relative_to(step))
                                                  for p in step.rglob("*")))
        for name in present:
            assert isinstance(json.loads((step / name).read_text()), dict), name


def test_restore_step_reads_one_kept_epoch_from_last_or_best_and_names_a_missing_one(tmp_path):
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=2)
    for step in (1, 2, 3, 4):  # last keeps 3 and 4; best keeps 1 and 2 (ranked by epoch)
        ckpt.save(_state(step, 10.0 + step), {"epoch": step, "best_valid_accuracy": 0.5},
                  best=step <= 2, rank=step)
    template = checkpoint.abstract(_state(0, 0.0))
    for step in (2, 3, 4):
        state, record = ckpt.restore_step(step, template)
        assert int(state.step) == step and record["epoch"] == step
        np.testing.assert_array_equal(state.params["w"], [10.0 + step] * 3)
    with pytest.raises(errors.UserError, match=r"checkpoint 7 is not kept .*\[1, 2, 3, 4\]"):
        ckpt.restore_step(7, template)
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
    # predict's restore (read-only: test_predict_restore_skips_damage_without_moving_...):
    # one line naming the folder when no step is readable, in `best` nor in `last`.
    _damage(root / "best")
    _damage(root / "last")
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


# --- Restoring is not repairing: another model's checkpoint, unreadable files, predict ---

def _listing(root):
    """Every path under `root` with its size: what must not change when nothing is moved."""
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1)
                  for p in root.rglob("*"))


def _saved(tmp_path, steps=(1, 2, 3), best=(1, 2, 3)):
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=3, use_async=False)
    for step in steps:
        ckpt.save(_state(step, float(step)), {"epoch": step, "best_valid_accuracy": step / 10},
                  best=step in best)
    ckpt.close()
    return tmp_path / "checkpoints"


def _other_state(**changes):
    """`_state`'s structure with one leaf changed (shape, dtype or an extra parameter)."""
    params = {"w": jnp.full(changes.get("n", 3), 0.0, changes.get("dtype", jnp.float32))}
    if changes.get("extra"):
        params["b"] = jnp.zeros(2)
    return steps_lib.TrainState(step=jnp.asarray(0, jnp.int32), params=params, batch_stats={},
                                opt_state={"m": jnp.zeros(3)}, rng=jnp.zeros(2, jnp.uint32))


@pytest.mark.parametrize("changes, expected", [
    ({"n": 4}, r"params\.w has shape \(3,\) there, \(4,\) here"),
    ({"dtype": jnp.bfloat16}, r"params\.w is float32 there, bfloat16 here"),
    ({"extra": True}, r"params\.b is not in the checkpoint"),
])
def test_a_checkpoint_of_another_model_is_named_and_nothing_is_moved(tmp_path, changes,
                                                                     expected):
    """A shape, dtype or structure change (another version or config of the run) is one
    line naming the first leaf that differs; no healthy step is set aside as damaged."""
    root = _saved(tmp_path)
    before = _listing(root)
    template = checkpoint.abstract(_other_state(**changes))
    warnings = []
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=3, warn=warnings.append)
    for restore in (ckpt.restore_latest, ckpt.restore_best):
        with pytest.raises(errors.UserError, match=r"checkpoint 3 in .*checkpoints/(last|best) "
                                                   r"does not fit this model: " + expected):
            restore(template)
    ckpt.close()
    with pytest.raises(errors.UserError, match=expected + r".*nothing was moved"):
        checkpoint.restore_best(str(tmp_path), template, warn=warnings.append)
    assert warnings == [] and _listing(root) == before


@contextlib.contextmanager
def _unprivileged():
    """Runs the block as user `nobody` when the tests run as root (root reads a file
    whatever its mode: `chmod 000` alone proves nothing then)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def shared_tmp():
    """A folder that user `nobody` may enter (pytest's own are root's alone)."""
    path = tempfile.mkdtemp(prefix="jaxgenre-ckpt-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


def test_a_file_that_cannot_be_read_is_named_with_its_reason_and_nothing_is_moved(shared_tmp,
                                                                                 monkeypatch):
    """EACCES (a real one: the reads run as `nobody`) on an array file, in training's
    restore and in predict's, and on a step's metadata when the folder is opened."""
    from jaxgenre.checkpoint import check as checkpoint_check

    root = _saved(shared_tmp)
    (array_file,) = [p for p in (root / "last" / "3" / "state" / "d").iterdir()]
    (best_file,) = [p for p in (root / "best" / "3" / "state" / "d").iterdir()]
    before = _listing(root)
    template = checkpoint.abstract(_state(0, 0.0))
    ckpt = checkpoint.Checkpoints(str(shared_tmp), keep=3)
    array_file.chmod(0)
    best_file.chmod(0)
    try:
        with _unprivileged(), pytest.raises(errors.UserError) as raised:
            ckpt.restore_latest(template)
        assert f"cannot read checkpoint 3 in {root / 'last'}: {array_file}: Permission " \
               f"denied" in str(raised.value) and "nothing was moved" in str(raised.value)
        with _unprivileged(), pytest.raises(errors.UserError, match=f"checkpoint 3 in "
                                                                    f"{root / 'best'}: "
                                                                    f"{best_file}: Permission"):
            checkpoint.restore_best(str(shared_tmp), template)
        # Without that first look, TensorStore's own PERMISSION_DENIED is told apart too.
        monkeypatch.setattr(checkpoint_check, "check_readable", lambda *args: None)
        with _unprivileged(), pytest.raises(errors.UserError, match=f"{best_file}: Permission"):
            checkpoint.restore_best(str(shared_tmp), template)
    finally:
        array_file.chmod(0o644)
        best_file.chmod(0o644)
        ckpt.close()
    metadata = root / "best" / "2" / "_CHECKPOINT_METADATA"
    metadata.chmod(0)
    try:
        with _unprivileged(), pytest.raises(errors.UserError, match=f"{metadata}: Permission "
                                                                    f"denied"):
            checkpoint.Checkpoints(str(shared_tmp), keep=3)
    finally:
        metadata.chmod(0o644)
    assert _listing(root) == before


def test_os_errors_in_tensorstore_messages_are_told_from_damage():
    """TensorStore reports a failed read as a ValueError whose text carries the status,
    the file and the OS error code; an I/O error is the disk's, a truncated chunk the
    checkpoint's."""
    from jaxgenre.checkpoint import check as checkpoint_check

    where = "checkpoint 3 in /run/checkpoints/last"
    eio = ValueError('UNKNOWN: Error opening "zarr" driver: Error reading local file '
                     '"/run/checkpoints/last/3/state/d/ab12": Input/output error '
                     "[os_error_code='5'] [tensorstore_spec='{...}']")
    problem = checkpoint_check.classify(eio, where)
    assert isinstance(problem, errors.UserError)
    assert str(problem).startswith(f"cannot read {where}: /run/checkpoints/last/3/state/d/ab12: "
                                   f"{os.strerror(5)}")
    truncated = ValueError('OUT_OF_RANGE: Error opening "cast" driver: Error reading Byte range '
                           '[0, 287) of local file "/run/x/d/ab12": Requested byte range [0, '
                           '287) is not valid for value of size 10')
    assert isinstance(checkpoint_check.classify(truncated, where), checkpoint_check.Damaged)
    bug = TypeError("unsupported operand")
    assert checkpoint_check.classify(bug, where) is bug  # neither: a bug, raised as itself


def test_predict_restore_skips_damage_without_moving_anything(tmp_path):
    """The read-only restore predict uses: a damaged best step is read from `last`, else
    the next best is used; nothing is renamed; all damaged is one line."""
    root = _saved(tmp_path, steps=(1, 2, 3), best=(2, 3))
    template = checkpoint.abstract(_state(0, 0.0))
    _damage(root / "best" / "3")
    before, warnings = _listing(root), []
    state = checkpoint.restore_best(str(tmp_path), template, warn=warnings.append)
    np.testing.assert_array_equal(state.params["w"], [3.0, 3.0, 3.0])  # last's copy of 3
    _damage(root / "last" / "3")
    before = _listing(root)
    state = checkpoint.restore_best(str(tmp_path), template, warn=warnings.append)
    np.testing.assert_array_equal(state.params["w"], [2.0, 2.0, 2.0])  # the next best
    assert _listing(root) == before and not (root / "damaged").exists()
    assert len(warnings) == 3 and all("left in place" in w for w in warnings)
    _damage(root / "best" / "2")
    _damage(root / "last" / "2")
    with pytest.raises(errors.UserError, match=r"no readable checkpoint in .*best.*new --workdir"):
        checkpoint.restore_best(str(tmp_path), template, warn=warnings.append)
    assert not (root / "damaged").exists()


def test_every_single_file_damage_is_damage_not_a_crash(tmp_path):
    """Each file of a step removed, emptied, truncated or with a flipped byte: the
    read-only restore either reads the step (orbax does not need that file) or calls it
    damaged; never another error."""
    root = _saved(tmp_path, steps=(1,), best=(1,))
    template = checkpoint.abstract(_state(0, 0.0))
    step = root / "best" / "1"
    names = sorted(str(p.relative_to(step)) for p in step.rglob("*") if p.is_file())
    shutil.rmtree(root / "last")  # so that no fallback to `last` hides the damage
    spare = tmp_path / "spare"
    shutil.copytree(step, spare)
    damaged = set()
    for name in names:
        for how in ("remove", "empty", "truncate", "flip"):
            path = step / name
            data = path.read_bytes()
            middle = len(data) // 2
            if how == "flip" and not data:
                continue
            if how == "remove":
                path.unlink()
            else:
                path.write_bytes({"empty": b"", "truncate": data[:middle],
                                  "flip": data[:middle] + bytes([data[middle] ^ 0xFF])
                                  + data[middle + 1:]}[how])
            try:
                checkpoint.restore_best(str(tmp_path), template, warn=lambda line: None)
            except errors.UserError as e:  # step 1 damaged and nothing before it
                assert "no readable checkpoint" in str(e), (name, how, e)
                damaged.add(name)
            shutil.copyfile(spare / name, path)
    assert {"state/_METADATA", "record/metadata"} <= damaged
