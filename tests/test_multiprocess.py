"""launch.py as two cooperating processes on this machine (jax.distributed over gloo, the
CPU collectives) against the same command as one process: same global batches, so the
same training and the same test results. Each process has 2 CPU devices, so the 4-device
mesh spans both processes; the single-process run has 4 local devices."""

import json
import os
import re
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import orbax.checkpoint as ocp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["launch.py", "--config=configs/spectralcnn_mel.py",
        "--config.data.synthetic.clips_per_class=3", "--config.data.synthetic.seconds=4",
        "--config.data.clip_seconds=4", "--config.data.segment_seconds=1",
        "--config.features.n_mels=32", "--config.train.epochs=2",
        "--config.train.batch_size=8", "--config.eval.batch_size=8",
        "--config.eval.plots=False",
        # SGD, not the default Adam: Adam divides by sqrt(v), so a near-zero gradient whose
        # float summation order differs (gloo's all-reduce vs one process's) can move a
        # weight by up to ±lr in either direction; SGD keeps such differences at rounding
        # level, so the comparison below can be tight.
        "--config.optim.name=sgd", "--config.optim.learning_rate=0.05"]


def _env(devices):
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                JAX_PLATFORMS="cpu")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _final_params(workdir):
    """The last checkpoint's step and parameters, restored onto this process's one device."""
    last = os.path.join(workdir, "checkpoints", "last")
    step = max(int(d) for d in os.listdir(last) if d.isdigit())
    path = os.path.join(last, str(step), "state")
    checkpointer = ocp.StandardCheckpointer()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                          checkpointer.metadata(path).item_metadata.tree)
    return step, checkpointer.restore(path, target)["params"]


@pytest.mark.slow  # ~55 s on 2 cores: two launch.py processes train a run; the default suite keeps the refusals
def test_two_processes_train_like_one(tmp_path):
    _check_two_processes_train_like_one(tmp_path, [])


@pytest.mark.slow  # ~110 s on 2 cores
def test_two_processes_with_resident_data_and_scanned_steps_train_like_one_streaming(tmp_path):
    """The multi-process run keeps its features on the devices, each process holding
    (and reading from the cache) only its devices' rows, and runs 2 steps per dispatch;
    the reference is the plain single-process run."""
    outputs = _check_two_processes_train_like_one(
        tmp_path, ["--config.train.resident=True", "--config.train.steps_per_dispatch=2"])
    for index, (out, _) in enumerate(outputs):
        assert "batches resident on the devices" in out
        held = re.search(r"process (\d) holds table rows (\d+)\.\.(\d+) of (\d+)", out)
        assert held, out[-2000:]
        process, first, last, rows = map(int, held.groups())
        # 30 clips (3 per class) over 4 devices: 32 rows, 16 on each process's 2 devices
        assert (process, first, last, rows) == (index, 16 * index, 16 * index + 15, 32)


@pytest.mark.slow  # ~100 s: three launch.py processes
def test_two_processes_training_two_seeds_as_one_program_train_each_like_one(tmp_path):
    """`config.seeds=2` vectorised over two processes: seed 0 (the run's own) trains
    as the single-process run, within the stated rounding; seed 1 too
    was trained and tested."""
    outputs = _check_two_processes_train_like_one(
        tmp_path, ["--config.seeds=2", "--config.train.vectorize_seeds=True"],
        run_dir="seed_0", tolerance=1e-4)
    assert "2 seeds trained as one program" in outputs[0][0]
    assert (tmp_path / "multi" / "seed_1" / "results.json").is_file()


def _check_two_processes_train_like_one(tmp_path, multi_flags, run_dir=".", tolerance=1e-5):
    """The same command as one process (4 local devices, streamed) and as two processes
    of 2 devices each with `multi_flags`: the same training and test results (the
    multi-process run's in `run_dir`; losses and parameters within `tolerance`).
    Returns the two processes' (stdout, stderr)."""
    single = tmp_path / "single"
    result = subprocess.run([sys.executable, *TINY, f"--workdir={single}"], cwd=ROOT,
                            env=_env(4), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    multi, port = tmp_path / "multi", _free_port()
    procs = [subprocess.Popen(
        [sys.executable, *TINY, *multi_flags, f"--workdir={multi}", "--num_processes=2",
         f"--process_id={i}", f"--coordinator_address=127.0.0.1:{port}"],
        cwd=ROOT, env=_env(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    # Each process loaded only its own half of every global batch of 8.
    assert "process 0 of 2: loads rows 0..3 of every global batch of 8" in outputs[0][0]
    assert "process 1 of 2: loads rows 4..7 of every global batch of 8" in outputs[1][0]
    assert "2 of 4 devices are local" in outputs[1][0]

    multi = multi / run_dir
    lines = [[json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
             for d in (single, multi)]
    assert [l["epoch"] for l in lines[1]] == [1, 2]  # written once, by process 0
    for a, b in zip(*lines):
        assert a["step"] == b["step"]
        np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=tolerance)
        assert a["valid_accuracy"] == b["valid_accuracy"]
    (step_1, params_1), (step_2, params_2) = _final_params(single), _final_params(multi)
    assert step_1 == step_2 > 0
    diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
               for a, b in zip(jax.tree.leaves(params_1), jax.tree.leaves(params_2)))
    assert diff <= tolerance, diff
    results = [json.loads((d / "results.json").read_text()) for d in (single, multi)]
    for level in ("clips", "segments"):
        for metric in ("accuracy", "macro_f1", "macro_auc", "n"):
            np.testing.assert_allclose(results[0]["test"][level][metric],
                                       results[1]["test"][level][metric], atol=1e-6)
    return outputs


def test_a_multiprocess_run_without_its_coordinator_is_refused(tmp_path):
    result = subprocess.run([sys.executable, *TINY, f"--workdir={tmp_path}",
                             "--num_processes=2", "--process_id=0"], cwd=ROOT, env=_env(1),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "2-process run needs the coordinator address" in result.stderr


def test_a_refused_process_0_stops_every_process_with_its_line(tmp_path):
    """A workdir held by a live run: process 0 is refused the lock, and so is every other
    process, in the same one line (they would otherwise run on into the first collective
    and wait there for a process 0 that has gone)."""
    workdir, port = tmp_path / "held", _free_port()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from jaxgenre.checkpoint import workdir_lock; "
         f"workdir_lock.hold({str(workdir)!r}); print('held', flush=True); sys.stdin.read()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    procs = []
    try:
        assert holder.stdout.readline().strip() == "held"
        procs = [subprocess.Popen(
            [sys.executable, *TINY, f"--workdir={workdir}", "--num_processes=2",
             f"--process_id={i}", f"--coordinator_address=127.0.0.1:{port}"],
            cwd=ROOT, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)]
        outputs = [p.communicate(timeout=150) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        holder.kill()
        holder.wait()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 2 and "Traceback" not in err, err[-2000:]
        (line,) = [l for l in err.splitlines() if l.startswith("error: ")]
        assert f"is in use by process {holder.pid} " in line and "another --workdir" in line
    assert not (workdir / "run.json").exists()
