"""TensorBoard event files for a run: `<workdir>/tensorboard/events.out.tfevents.*`, so
`tensorboard --logdir=runs` shows every run, grid cell, fold and seed side by side.

Written with tensorboardX's protobufs and its synchronous `EventsWriter` (its one
dependency, protobuf, comes with orbax-checkpoint), from the calling thread: its
`SummaryWriter` writes from a background thread fed by a bounded queue, and a full disk
kills that thread and then blocks the next writes and `close` for ever. Here a failed
write raises `OSError` where it happens; `RunWriter` turns it into one warning and stops
writing events, and the run goes on.

tensorboardX imports torch at import time when torch is installed, only to accept torch
tensors: `load` imports it with torch blocked, once, when a run's writer is made (before
the run starts its threads), so a run never loads torch. Only numpy values are passed.

A rerun in the same folder first writes TensorBoard's purge marker: events of earlier
attempts at steps >= `purge_step` are hidden (a resumed run purges from the step after
its checkpoint's, which it trains again; a run that restarts from scratch, from 1).
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from typing import Callable, Dict, Optional

import numpy as np

FOLDER = "tensorboard"
_MODULES = None


def load():
    """(EventsWriter, event_pb2, summary_pb2) from tensorboardX, imported without torch;
    ImportError when tensorboardX is not installed."""
    global _MODULES
    if _MODULES is None:
        blocked = "torch" not in sys.modules
        if blocked:
            sys.modules["torch"] = None  # `import torch` raises ImportError while set
        try:
            from tensorboardX.event_file_writer import EventsWriter
            from tensorboardX.proto import event_pb2, summary_pb2
        finally:
            if blocked:
                del sys.modules["torch"]
        _MODULES = (EventsWriter, event_pb2, summary_pb2)
    return _MODULES


def has_events(workdir: str) -> bool:
    """Whether an earlier attempt left event files in `workdir`."""
    folder = os.path.join(workdir, FOLDER)
    return os.path.isdir(folder) and any(n.startswith("events.") for n in os.listdir(folder))


class EventWriter:
    """Scalars and PNG figures of one run (process 0), written as they come."""

    def __init__(self, workdir: str, *, purge_step: Optional[int] = None):
        events_writer, self._event_pb2, self._summary_pb2 = load()
        self.logdir = os.path.join(workdir, FOLDER)
        os.makedirs(self.logdir, exist_ok=True)
        self._file = events_writer(os.path.join(self.logdir, "events"))
        if purge_step is not None:
            log = self._event_pb2.SessionLog(status=self._event_pb2.SessionLog.START)
            self._write(self._event_pb2.Event(step=int(purge_step), session_log=log))

    def _write(self, event) -> None:
        event.wall_time = time.time()
        self._file.write_event(event)

    def _summary(self, step: int, values) -> None:
        self._write(self._event_pb2.Event(step=int(step),
                                          summary=self._summary_pb2.Summary(value=values)))

    def scalars(self, step: int, values: Dict[str, object], *, prefix: str) -> None:
        """`prefix/name` for each finite number in `values` (None and NaN left out: an
        undefined figure has no point to draw)."""
        value = self._summary_pb2.Summary.Value
        points = [value(tag=f"{prefix}/{name}", simple_value=float(v))
                  for name, v in values.items()
                  if not isinstance(v, bool) and isinstance(v, (int, float, np.number))
                  and math.isfinite(float(v))]
        if points:
            self._summary(step, points)
            self._file.flush()

    def figure(self, tag: str, png_path: str, step: int) -> None:
        """A PNG the run drew, as an image: its own bytes, not re-encoded."""
        from PIL import Image  # matplotlib's own dependency

        with open(png_path, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            channels = len(image.getbands())
        picture = self._summary_pb2.Summary.Image(height=height, width=width,
                                                  colorspace=channels,
                                                  encoded_image_string=data)
        self._summary(step, [self._summary_pb2.Summary.Value(tag=tag, image=picture)])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class RunEvents:
    """A run's event files as `RunWriter` keeps them: opened at the first event (after a
    resume has said its step), and any failure — tensorboardX missing, a full disk, a
    file where the folder should be — one warning, after which the run goes on without
    events."""

    def __init__(self, workdir: str, *, enabled: bool, warn: Callable[[str], None]):
        self.workdir, self.enabled, self._warn = workdir, enabled, warn
        self.step = 0  # the step of the last epoch line: where test figures are drawn
        self._purge_step: Optional[int] = None
        self._writer: Optional[EventWriter] = None
        if enabled:
            try:
                load()  # now, before the run's threads start
            except ImportError as e:
                self._fail(f"tensorboardX cannot be imported ({e})")

    def resumed(self, step: int) -> None:
        """Resumed from a checkpoint at `step`: what earlier attempts logged after it is
        trained again, so it is purged."""
        self._purge_step, self.step = step + 1, step

    def _fail(self, why: str) -> None:
        self.enabled = False
        self._warn(f"no TensorBoard events from here on: {why}; the run goes on "
                   f"(--config.train.tensorboard=False leaves them out)")

    def _call(self, method: str, *args, **kwargs) -> None:
        if not self.enabled:
            return
        try:
            if self._writer is None:
                purge = self._purge_step
                if purge is None and has_events(self.workdir):
                    purge = 1  # an earlier attempt that saved no checkpoint: from scratch
                self._writer = EventWriter(self.workdir, purge_step=purge)
            getattr(self._writer, method)(*args, **kwargs)
        except OSError as e:
            self._fail(f"cannot write {os.path.join(self.workdir, FOLDER)} "
                       f"({e.strerror or e})")

    def scalars(self, step: int, values: Dict[str, object], *, prefix: str) -> None:
        self._call("scalars", step, values, prefix=prefix)

    def figure(self, tag: str, png_path: str) -> None:
        self._call("figure", tag, png_path, self.step)

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except OSError as e:
                self._fail(f"cannot close its event file ({e.strerror or e})")
