"""TensorBoard event files for a run: `<workdir>/tensorboard/events.out.tfevents.*`, so
`tensorboard --logdir=runs` shows every run, grid cell, fold and seed side by side.

Written with tensorboardX (its one dependency, protobuf, comes with orbax-checkpoint).
tensorboardX imports torch at import time when torch is installed, only to accept torch
tensors; this module imports it with torch blocked, so a run never loads torch (the
test machine has it, users may) and passes numpy values only. A resumed run purges the
events after its checkpoint's step (TensorBoard's `purge_step`), so the epochs it trains
again are not shown twice.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Dict, Optional

import numpy as np

FOLDER = "tensorboard"


def _summary_writer_class():
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None  # `import torch` raises ImportError while this is set
    try:
        from tensorboardX import SummaryWriter
    finally:
        if blocked:
            del sys.modules["torch"]
    return SummaryWriter


class EventWriter:
    """Scalars and PNG figures of one run, written by process 0 in the background."""

    def __init__(self, workdir: str, *, purge_step: Optional[int] = None):
        self.logdir = os.path.join(workdir, FOLDER)
        self._writer = _summary_writer_class()(self.logdir, purge_step=purge_step,
                                               flush_secs=30)

    def scalars(self, step: int, values: Dict[str, object], *, prefix: str) -> None:
        """`prefix/name` for each finite number in `values` (None and NaN left out: an
        undefined figure has no point to draw)."""
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                continue
            if math.isfinite(float(value)):
                self._writer.add_scalar(f"{prefix}/{name}", float(value), int(step))

    def figure(self, tag: str, png_path: str, step: int) -> None:
        """A PNG the run drew, as an image."""
        from PIL import Image  # matplotlib's own dependency

        with Image.open(png_path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self._writer.add_image(tag, pixels, int(step), dataformats="HWC")

    def close(self) -> None:
        self._writer.close()
