"""Faults injected into real runs (subprocesses of launch.py, as a user runs it):
`kill -9` mid-epoch, during evaluation and during a checkpoint save, one after another
on one run, and damaged checkpoints and a truncated feature cache. Each run must end
with the test results of an uninterrupted run: nothing is lost beyond the interrupted
epoch. The kills use the named fault points of `jaxgenre.faults` (SIGKILL at the n-th
pass), at places drawn from a seeded generator."""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["--config=configs/spectralcnn_mel.py", "--config.data.synthetic.clips_per_class=3",
         "--config.data.synthetic.seconds=4", "--config.data.clip_seconds=4",
         "--config.data.segment_seconds=1", "--config.features.n_mels=32",
         "--config.train.epochs=3", "--config.train.batch_size=8",
         "--config.eval.batch_size=8", "--config.eval.plots=False"]


def _launch(workdir, kill_at=None):
    env = {k: v for k, v in os.environ.items() if k != "JAXGENRE_FAULT_KILL"}
    env["PYTHONUNBUFFERED"] = "1"  # what a killed run printed is kept
    if kill_at:
        env["JAXGENRE_FAULT_KILL"] = kill_at
    return subprocess.run([sys.executable, "launch.py", *FLAGS, f"--workdir={workdir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


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
    # The cache's paths are absolute in run.json: point this copy at its own cache.
    run = json.loads((workdir / "run.json").read_text())
    assert str(reference) not in json.dumps(run["config"]["data"].get("cache_dir") or "")
    again = _launch(workdir)
    assert again.returncode == 0, again.stderr[-3000:]
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
