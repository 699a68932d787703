"""Faults injected into real runs (subprocesses of launch.py, as a user runs it):
`kill -9` mid-epoch, during evaluation and during a checkpoint save, one after another
on one run, and damaged checkpoints and a truncated feature cache. Each run must end
with the test results of an uninterrupted run (what a kill costs in epochs: BUILD_NOTES,
"Hardening"). The kills use the named fault points of `jaxgenre.faults` (SIGKILL at the n-th
pass), at places drawn from a seeded generator."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

pytestmark = [pytest.mark.faults, pytest.mark.slow]  # ~2 min on 2 cores

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["--config=configs/spectralcnn_mel.py", "--config.data.synthetic.clips_per_class=3",
         "--config.data.synthetic.seconds=4", "--config.data.clip_seconds=4",
         "--config.data.segment_seconds=1", "--config.features.n_mels=32",
         "--config.train.batch_size=8",
         "--config.eval.batch_size=8", "--config.eval.plots=False"]


def _launch(workdir, kill_at=None, file_limit=None, epochs=3):
    """launch.py on FLAGS; `kill_at` a fault point, `file_limit` the largest file (bytes)
    the run may write (RLIMIT_FSIZE: a longer write fails with EFBIG, as a full disk
    fails one with ENOSPC)."""
    env = {k: v for k, v in os.environ.items() if k != "JAXGENRE_FAULT_KILL"}
    env["PYTHONUNBUFFERED"] = "1"  # what a killed run printed is kept
    if kill_at:
        env["JAXGENRE_FAULT_KILL"] = kill_at

    def limit_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run([sys.executable, "launch.py", *FLAGS, f"--config.train.epochs={epochs}",
                           f"--workdir={workdir}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, preexec_fn=limit_files if file_limit else None)


def _resumed_epoch(stdout):
    """The epoch a run resumed at ('resuming from ... at epoch N'), or None."""
    for line in stdout.splitlines():
        if line.startswith("resuming from "):
            return int(line.rsplit(" ", 1)[1])
    return None


def _test_figures(workdir):
    results = json.loads((workdir / "results.json").read_text())
    return results["test"], results["best_valid_accuracy"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    done = _launch(workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def test_killed_mid_epoch_in_evaluation_and_in_a_save_then_resumed(reference, tmp_path):
    ref = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    steps_per_epoch = ref[0]["step"]
    rng = np.random.default_rng(15)
    # Mid-epoch 3. (In epoch 2 the checkpoint of epoch 1 may still be being written —
    # saves are asynchronous — and a kill then loses it too: BUILD_NOTES' table says so.)
    step = 2 * steps_per_epoch + int(rng.integers(1, steps_per_epoch + 1))
    workdir = tmp_path / "run"
    # Then the resumed run is killed in its first validation batch, and the run resumed
    # after that while the first checkpoint it saves is being written.
    kills = [f"train_step:{step}", "evaluate_batch:1", "checkpoint_save:1"]
    resumed_at = []
    for i, kill in enumerate(kills):
        killed = _launch(workdir, kill_at=kill)
        assert killed.returncode == -signal.SIGKILL, (kill, killed.stderr[-2000:])
        if i:
            resumed_at.append(_resumed_epoch(killed.stdout))
    finished = _launch(workdir)
    assert finished.returncode == 0, finished.stderr[-3000:]
    resumed_at.append(_resumed_epoch(finished.stdout))
    # Each resume starts after the newest finished save: epoch 2 (or 1 if epoch 2's save
    # was still in flight when the first kill came), never from scratch.
    print(f"killed at {kills}; the three resumes started at epochs {resumed_at}")
    assert all(epoch in (1, 2) for epoch in resumed_at), resumed_at
    assert _test_figures(workdir) == _test_figures(reference)
    # Every epoch is in metrics.jsonl (an epoch cut off before its checkpoint is done
    # again and logged again), ending with the same line as the uninterrupted run's.
    epochs = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert {e["epoch"] for e in epochs} == {1, 2, 3}
    assert [epochs[-1][k] for k in ("step", "train_loss", "valid_accuracy")] == \
        [ref[-1][k] for k in ("step", "train_loss", "valid_accuracy")]


def _truncate_big_files(folder, size=1000):
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_size > size:
            with open(path, "r+b") as f:
                f.truncate(size)


def test_damaged_latest_and_best_checkpoints_and_a_truncated_cache(reference, tmp_path):
    """The issue's reproductions 1 and 2 on a finished run: the newest `last` and `best`
    steps truncated (every file over 1000 bytes cut to 1000) and the feature cache cut in
    half; the same command again must finish with the same results."""
    workdir = tmp_path / "run"
    shutil.copytree(reference, workdir)
    last = workdir / "checkpoints" / "last"
    newest = max(int(p.name) for p in last.iterdir() if p.name.isdigit())
    best = workdir / "checkpoints" / "best"
    newest_best = max(int(p.name) for p in best.iterdir() if p.name.isdigit())
    _truncate_big_files(last / str(newest))
    _truncate_big_files(best / str(newest_best))
    (features,) = (workdir / "cache").rglob("features.npy")
    with open(features, "r+b") as f:
        f.truncate(features.stat().st_size // 2)
    # The cache lives in the run's own folder (data.cache_dir unset), so the copy has its own.
    run = json.loads((workdir / "run.json").read_text())
    assert str(reference) not in json.dumps(run["config"]["data"].get("cache_dir") or "")
    again = _launch(workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    # One line per fault: orbax's echoes of the failed reads (tracebacks, TensorStore
    # specs) are dropped or cut (cli.shorten_library_logs).
    assert "Traceback" not in again.stderr and "'driver'" not in again.stderr, \
        again.stderr[-3000:]
    warnings = [line for line in again.stderr.splitlines() if line.startswith("WARNING")]
    assert any(f"feature cache {features.parent}" in w and "computing it again" in w
               for w in warnings), warnings
    for folder, step in ((last, newest), (best, newest_best)):
        line = [w for w in warnings if f"checkpoint {step} in {folder}" in w]
        assert len(line) == 1 and "moved to " in line[0] and len(line[0]) < 500, warnings
    damaged = sorted(p.name.rsplit("_", 1)[0] for p in (workdir / "checkpoints" / "damaged")
                     .iterdir())
    assert damaged == [f"best_{newest_best}", f"last_{newest}"]
    assert _test_figures(workdir) == _test_figures(reference)


def test_writes_that_fail_are_one_line_errors_and_leave_the_previous_state(reference,
                                                                          tmp_path):
    """A disk that cannot take the feature cache, then one that cannot take a
    checkpoint: each an exit 2 with one line naming the folder; then, with room again,
    the same command finishes with the uninterrupted run's results."""
    workdir = tmp_path / "run"
    no_room = _launch(workdir, file_limit=200_000)  # the cache's features.npy is ~660 KB
    assert no_room.returncode == 2, no_room.stderr[-2000:]
    assert "Traceback" not in no_room.stderr
    (line,) = [l for l in no_room.stderr.splitlines() if l.startswith("error: ")]
    assert "cannot write the feature cache" in line and "File too large" in line
    assert "MB)" in line and not list((workdir / "cache").iterdir())  # no partial entry
    one_epoch = _launch(workdir, epochs=1)
    assert one_epoch.returncode == 0, one_epoch.stderr[-2000:]
    no_room = _launch(workdir, file_limit=1_000_000)  # checkpoint files are 1.4-6.5 MB
    assert no_room.returncode == 2, no_room.stderr[-2000:]
    (line,) = [l for l in no_room.stderr.splitlines() if l.startswith("error: ")]
    assert f"under {workdir / 'checkpoints'} (File too large)" in line
    assert "run the same command again" in line
    # No traceback: orbax's and TensorStore's echoes of the failed writes are dropped
    # or cut to one line (cli.shorten_library_logs).
    assert "Traceback" not in no_room.stderr, no_room.stderr[-3000:]
    finished = _launch(workdir)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert _resumed_epoch(finished.stdout) == 1  # epoch 1's checkpoint was intact
    assert _test_figures(workdir) == _test_figures(reference)
