"""One run per work directory: a live holder refuses a second run (launch.py exits 2 in
one line naming it); a holder killed with SIGKILL leaves a lock the next run takes over;
a failing flock is reported as itself; a lock file removed under a live run stops it."""

import os
import shutil
import signal
import subprocess
import sys

import pytest

from jaxgenre import errors
from jaxgenre.checkpoint import workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_live_run_is_named_and_a_killed_ones_lock_is_taken_over(tmp_path):
    workdir = str(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from jaxgenre.checkpoint import workdir_lock; "
         f"workdir_lock.hold({workdir!r}); print('held', flush=True); sys.stdin.read()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(errors.UserError, match=f"work directory {workdir} is in use by "
                                                   f"process {holder.pid} on "):
            workdir_lock.hold(workdir)
        refused = subprocess.run(
            [sys.executable, "launch.py", "--config=configs/spectralcnn_mel.py",
             f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        (line,) = [l for l in refused.stderr.splitlines() if l.startswith("error: ")]
        assert f"is in use by process {holder.pid} " in line and "another --workdir" in line
        assert not os.path.exists(os.path.join(workdir, "run.json"))  # nothing started
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert f"process {holder.pid} " in workdir_lock.holder(workdir)  # stale, still there
    workdir_lock.hold(workdir)  # taken over
    assert workdir_lock.holder(workdir).startswith(f"process {os.getpid()} ")
    workdir_lock.hold(workdir)  # again in the same process: nothing happens
    workdir_lock.release(workdir)


def test_a_flock_failure_other_than_in_use_is_reported_as_itself(tmp_path, monkeypatch):
    """ENOLCK (a filesystem without locks), EBADF, ...: not "in use by ..."."""
    import errno

    def no_locks(f, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(workdir_lock.fcntl, "flock", no_locks)
    workdir = str(tmp_path / "run")
    with pytest.raises(errors.UserError) as raised:
        workdir_lock.hold(workdir)
    line = str(raised.value)
    assert "in use" not in line and "\n" not in line
    assert f"cannot lock {os.path.join(workdir, '.lock')} ({os.strerror(errno.ENOLCK)})" in line


def test_a_workdir_that_is_a_file_is_one_line(tmp_path):
    path = tmp_path / "run"
    path.write_text("not a folder")
    with pytest.raises(errors.UserError, match=f"cannot use {path} as the work directory "
                                               r"\(File exists\)"):
        workdir_lock.hold(str(path))


def test_a_lock_file_replaced_while_it_is_taken_is_taken_again(tmp_path, monkeypatch):
    """Between open and flock another process may remove the folder and a third create
    a new .lock: the lock taken must be on the file the path names, not the orphan."""
    workdir = tmp_path / "run"
    real_flock, calls = workdir_lock.fcntl.flock, []

    def replaced_first(f, operation):
        if not calls:  # the file just opened is unlinked; a new one takes its name
            os.unlink(workdir / ".lock")
            (workdir / ".lock").write_text("")
        calls.append(operation)
        return real_flock(f, operation)

    monkeypatch.setattr(workdir_lock.fcntl, "flock", replaced_first)
    workdir_lock.hold(str(workdir))
    monkeypatch.undo()
    try:
        held = workdir_lock._held[str(workdir)]
        assert os.fstat(held.fileno()).st_ino == os.stat(workdir / ".lock").st_ino
        assert workdir_lock.holder(str(workdir)).startswith(f"process {os.getpid()} ")
    finally:
        workdir_lock.release(str(workdir))


def test_a_workdir_removed_under_a_live_run_stops_that_run_at_its_next_save(tmp_path):
    """`rm -rf` of the folder while a run holds it: a new run can take a new .lock (its
    inode is another), so the live run must find out itself — at its next checkpoint
    save, before writing into the other run's folder."""
    import jax.numpy as jnp

    from jaxgenre import checkpoint
    from jaxgenre.training import steps as steps_lib

    workdir = tmp_path / "run"
    state = steps_lib.TrainState(step=jnp.asarray(1, jnp.int32), params={"w": jnp.zeros(3)},
                                 batch_stats={}, opt_state={}, rng=jnp.zeros(2, jnp.uint32))
    workdir_lock.hold(str(workdir))
    try:
        workdir_lock.check(str(workdir / "fold_0"))  # held, intact: nothing to say
        ckpt = checkpoint.Checkpoints(str(workdir), use_async=False)
        ckpt.save(state, {"epoch": 1, "best_valid_accuracy": 0.1})
        shutil.rmtree(workdir)
        with pytest.raises(errors.UserError, match=f"the lock file {workdir / '.lock'} of this "
                                                   f"run was removed"):
            workdir_lock.check(str(workdir))
        # A second run takes the folder (a new .lock), as nothing else can stop it ...
        taker = subprocess.run(
            [sys.executable, "-c", "from jaxgenre.checkpoint import workdir_lock; "
             f"workdir_lock.hold({str(workdir)!r}); print('taken')"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert taker.stdout.strip() == "taken", taker.stderr
        # ... and the first one stops at its next save, writing nothing.
        with pytest.raises(errors.UserError, match=f"{workdir / '.lock'} of this run was "
                                                   f"removed or replaced"):
            ckpt.save(state.replace(step=jnp.asarray(2, jnp.int32)),
                      {"epoch": 2, "best_valid_accuracy": 0.1})
        assert not (workdir / "checkpoints").exists()
    finally:
        workdir_lock.release(str(workdir))
