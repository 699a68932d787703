"""One run per work directory: a live holder refuses a second run (launch.py exits 2 in
one line naming it); a holder killed with SIGKILL leaves a lock the next run takes over."""

import os
import signal
import subprocess
import sys

import pytest

from jaxgenre import errors, workdir_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_live_run_is_named_and_a_killed_ones_lock_is_taken_over(tmp_path):
    workdir = str(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from jaxgenre import workdir_lock; "
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
