"""The TensorBoard writer loads no torch: tensorboardX imports torch at import time when
it is installed (as here, for the parity tests), so `results.tensorboard` imports it with
torch blocked; afterwards torch still imports for whoever wants it."""

import subprocess
import sys


CODE = """
import sys
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
