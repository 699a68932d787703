"""The TensorBoard writer (events read back by TensorFlow, not by tensorboardX): it loads
no torch (tensorboardX imports torch at import time when it is installed, as here for the
parity tests, so `results.tensorboard` imports it with torch blocked; afterwards torch
still imports); a failed write or a file in the folder's place is one warning and the
run goes on (tensorboardX's own writer blocked for ever on a full disk); a restart from
scratch purges the attempt before it."""

import os
import subprocess
import sys
import time


CODE = """
import sys
import time
from jaxgenre.results import tensorboard
w = tensorboard.EventWriter(sys.argv[1])
w.scalars(3, {"loss": 0.5, "undefined": None, "nan": float("nan")}, prefix="train")
w.close()
print("torch loaded:", "torch" in sys.modules)
import torch  # the block is lifted again
print("torch imports:", torch.__name__)
"""


def test_writing_events_loads_no_torch_and_leaves_torch_importable(tmp_path):
    result = subprocess.run([sys.executable, "-c", CODE, str(tmp_path)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "torch loaded: False" in result.stdout
    assert "torch imports: torch" in result.stdout
    import tensorflow as tf

    (name,) = [p.name for p in (tmp_path / "tensorboard").iterdir()]
    tags = [(e.step, v.tag, v.simple_value) for e in tf.compat.v1.train.summary_iterator(
        str(tmp_path / "tensorboard" / name)) for v in e.summary.value]
    assert tags == [(3, "train/loss", 0.5)]  # None and NaN have no point to draw


def _read(folder):
    """[(file, event)] of every events file in `folder`, read by TensorFlow."""
    import tensorflow as tf

    return [(name, e) for name in sorted(os.listdir(folder))
            for e in tf.compat.v1.train.summary_iterator(os.path.join(folder, name))]


def test_a_failed_event_write_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch):
    from jaxgenre.results import tensorboard

    warnings = []
    events = tensorboard.RunEvents(str(tmp_path), enabled=True, warn=warnings.append)
    events.scalars(1, {"loss": 1.0}, prefix="train")

    def full_disk(self, event):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tensorboard.EventWriter, "_write", full_disk)
    for step in range(2, 40):  # tensorboardX's queue held 10: this would block for ever
        events.scalars(step, {"loss": 1.0}, prefix="train")
    events.close()
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    assert "--config.train.tensorboard=False" in warnings[0]
    monkeypatch.undo()
    assert [e.step for _, e in _read(tmp_path / "tensorboard") if e.summary.value] == [1]


def test_a_file_where_the_folder_should_be_is_one_warning(tmp_path):
    from jaxgenre.results import tensorboard

    (tmp_path / "tensorboard").write_text("not a folder")
    warnings = []
    events = tensorboard.RunEvents(str(tmp_path), enabled=True, warn=warnings.append)
    events.scalars(1, {"loss": 1.0}, prefix="train")
    events.scalars(2, {"loss": 1.0}, prefix="train")
    events.close()
    assert len(warnings) == 1 and str(tmp_path / "tensorboard") in warnings[0]


def test_a_restart_from_scratch_purges_the_earlier_attempt(tmp_path):
    """An attempt that saved no checkpoint logged steps 1-3; the next starts from step 0
    again, so its file purges from step 1 (TensorBoard then shows only the new points)."""
    from jaxgenre.results import tensorboard

    first = tensorboard.RunEvents(str(tmp_path), enabled=True, warn=print)
    for step in (1, 2, 3):
        first.scalars(step, {"loss": 2.0}, prefix="train")
    first.close()
    time.sleep(1.1)  # event file names carry the second they were made
    second = tensorboard.RunEvents(str(tmp_path), enabled=True, warn=print)
    second.scalars(1, {"loss": 1.0}, prefix="train")
    second.close()
    read = _read(tmp_path / "tensorboard")
    files = sorted({name for name, _ in read})
    assert len(files) == 2
    assert [e.step for name, e in read if e.HasField("session_log")] == [1]
    assert [name for name, e in read if e.HasField("session_log")] == [files[1]]
