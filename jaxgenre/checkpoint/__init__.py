"""Checkpoints with orbax: the last K train states, the best one by validation accuracy,
and resume at an epoch boundary.

Each checkpoint holds the whole `TrainState` (params, batch_stats, optimiser state,
step, rng) and a small JSON record of where the run was (the epochs completed, the best
validation accuracy so far). Training saves at the end of epochs, so a resumed run
restarts at the epoch after the newest checkpoint; since each epoch's batches depend
only on (seed, epoch), it ends exactly where an uninterrupted run would.

Restoring is not repairing (`checkpoint.check` tells the cases apart before anything is
read or moved): only a checkpoint whose bytes or JSON cannot be read is damaged. In
training such a step is moved aside into `checkpoints/damaged/` (kept for inspection,
named in a one-line warning) and the one before it is used, so the run goes on and later
saves of the same step succeed; the same holds for the best checkpoints (the two best
are kept, so there is one to fall back to). A checkpoint of another model (a changed
shape, dtype or parameter tree) and a file the OS will not give (permission, I/O) are
one-line `UserError`s, with nothing moved. `restore_best(workdir, ...)`, what predict
uses, only reads: a damaged step is skipped, never moved. Orbax writes each step under a
temporary name and renames it when complete, so a save cut off by a kill leaves the
steps before it readable. Every save first checks that this run still holds its work
directory (`workdir_lock.check_everywhere`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from jaxgenre.checkpoint import check
from jaxgenre import faults
from jaxgenre.checkpoint import workdir_lock
from jaxgenre.checkpoint.check import Damaged, brief  # noqa: F401 - brief: public here too
from jaxgenre.errors import UserError


def _warn(text: str) -> None:
    warnings.warn(text, stacklevel=3)


class Checkpoints:
    """`<workdir>/checkpoints/last` (keep the newest `keep`) and
    `<workdir>/checkpoints/best` (keep two: the best validation accuracies, the best one
    served, the other there to fall back to).

    Saves are asynchronous by default (orbax writes in a background thread while
    training goes on; `benchmarks/checkpoint.py` measures what that saves)."""

    def __init__(self, workdir: str, keep: int = 3, use_async: bool = True,
                 warn: Callable[[str], None] = _warn):
        self.warn = warn  # one line per damaged checkpoint (the run's writer.warn)
        root = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.root = root
        for name in ("last", "best"):  # orbax reads these files as soon as it opens a folder
            self._screen(os.path.join(root, name))
        # Both managers may save the same step; in a multi-process run their barriers
        # (named after the step) must not collide, hence one key prefix each.
        sync = lambda name: ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name)
        self.last = ocp.CheckpointManager(
            os.path.join(root, "last"), options=ocp.CheckpointManagerOptions(
                max_to_keep=max(1, keep), create=True, multiprocessing_options=sync("last"),
                enable_async_checkpointing=use_async))
        self.best = ocp.CheckpointManager(
            os.path.join(root, "best"), options=ocp.CheckpointManagerOptions(
                max_to_keep=2, create=True, best_fn=_rank,
                best_mode="max", multiprocessing_options=sync("best"),
                enable_async_checkpointing=use_async))

    def save(self, state, record: Dict[str, Any], *, best: bool = False,
             rank: Optional[float] = None) -> None:
        """Starts saving `state` (asynchronously by default), also as the new best when
        `best`, ranked `rank` among the best (training passes the epoch: the caller
        decides what is better, `selection`; default the record's best accuracy, as
        before that rule existed). A write that fails — a
        full disk, a quota, a file size limit — is a `UserError` naming the folder, here
        or at the next save or `close` (when an asynchronous write fails); the steps saved
        before it stay readable, so the same command resumes from them."""
        step = int(jax.device_get(state.step))
        workdir_lock.check_everywhere(self.root)  # the folder is still this run's
        self._check_room(state, step, copies=2 if best else 1)
        args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  record=ocp.args.JsonSave(record))
        with self._writes_reported(step):
            self.last.save(step, args=args, force=True)
            faults.point("checkpoint_save")  # the fault tests kill here, mid-write
            if best:
                self.best.save(step, args=args, force=True,
                               metrics={"rank": float(rank if rank is not None
                                                      else record["best_valid_accuracy"])})

    def _check_room(self, state, step: int, copies: int) -> None:
        """A full disk found before orbax starts writing: its background threads log
        pages of tracebacks when a write fails half-way (a quota or file size limit
        still gets there: `_writes_reported`)."""
        size = sum(getattr(x, "nbytes", 0) for x in jax.tree.leaves(state))
        need = int(size * copies * 1.1) + (1 << 20)
        free = shutil.disk_usage(self.root).free
        if free < need:
            raise UserError(f"not enough free space for checkpoint {step} under {self.root}: "
                            f"it needs about {need / 1e6:.0f} MB, {free / 1e6:.0f} MB are "
                            f"free; free space there (or give another --workdir) and run the "
                            f"same command again; it resumes from the newest complete "
                            f"checkpoint")

    @contextlib.contextmanager
    def _writes_reported(self, step: Optional[int] = None):
        try:
            yield
        except Exception as e:
            reason = write_failure(e)
            if reason is None:
                raise
            raise UserError(f"cannot write checkpoint{'' if step is None else f' {step}'} "
                            f"under {self.root} ({reason}): free space there (or give another "
                            f"--workdir) and run the same command again; it resumes from the "
                            f"newest complete checkpoint") from None

    @staticmethod
    def _read(manager, step: int, abstract_state) -> Tuple[Any, Dict]:
        """(state, record) of `step`, checked first (`check.read_step`)."""
        return check.read_step(
            os.path.join(str(manager.directory), str(step)), abstract_state,
            f"checkpoint {step} in {manager.directory}",
            restore=lambda args: manager.restore(step, args=args))

    def _restore(self, manager, abstract_state, copies=None) -> Optional[Tuple[Any, Dict]]:
        """The newest readable step of `manager`; a damaged one is set aside and, when
        `copies` (another manager) holds the same step, that copy is read instead.
        Another model's checkpoint or an unreadable file: a `UserError`, nothing moved."""
        for step in sorted(manager.all_steps(), reverse=True):
            try:
                return self._read(manager, step, abstract_state)
            except Damaged as e:  # set it aside, try the one before
                moved = self._set_aside(str(manager.directory), step, manager)
                copy = copies is not None and step in copies.all_steps()
                self.warn(f"checkpoint {step} in {manager.directory} cannot be restored "
                          f"({e}); moved to {moved}; "
                          + (f"reading the same step in {copies.directory}" if copy
                             else "trying the one before it"))
                if copy:
                    try:
                        return self._read(copies, step, abstract_state)
                    except Damaged:  # damaged there too: its own restore sets it aside
                        pass
        return None

    def _screen(self, directory: str) -> None:
        """Sets aside every step in `directory` whose small JSON files (orbax's step
        metadata, the record, the best's metrics) do not parse: orbax reads them when a
        manager opens the folder, and one damaged file would stop the run there. A file
        the OS refuses is a `UserError` (nothing moved)."""
        for step in sorted(steps_in(directory)):
            where = f"checkpoint {step} in {directory}"
            step_dir = os.path.join(directory, str(step))
            check.check_readable(step_dir, where)
            try:
                check.screen_json(step_dir, where)
            except Damaged as e:
                moved = self._set_aside(directory, step)
                self.warn(f"{where} cannot be read ({e}); moved to {moved}")

    def _set_aside(self, directory: str, step: int, manager=None) -> str:
        """Moves step `step` of `directory` to `checkpoints/damaged/<last|best>_<step>_<time>`
        (so that the step can be saved again), refreshes `manager`'s view of the folder,
        and returns where it went. In a multi-process run only process 0 moves it; the
        others wait for it."""
        source = os.path.join(directory, str(step))
        target = os.path.join(self.root, "damaged", f"{os.path.basename(directory)}_{step}_"
                                                    f"{time.strftime('%Y%m%dT%H%M%S')}")
        while os.path.exists(target):  # the same step damaged twice within a second
            target += "+"
        if jax.process_index() == 0 and os.path.isdir(source):
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(source, target)
            except OSError as e:
                raise UserError(f"checkpoint {step} in {directory} is damaged and cannot be "
                                f"moved to {target} ({e.strerror}): move or delete it "
                                f"yourself and run again") from None
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"jaxgenre_set_aside_{step}")
        if manager is not None:
            manager.reload()
        return target

    def restore_latest(self, abstract_state) -> Optional[Tuple[Any, Dict]]:
        """(state, record) of the newest readable checkpoint, or None."""
        return self._restore(self.last, abstract_state)

    def restore_step(self, step: int, abstract_state) -> Tuple[Any, Dict]:
        """(state, record) of `step` as kept in `last` (or `best`), checked first: for
        looking back at one epoch of a finished run (`benchmarks/ablation_eval.py` keeps
        every epoch). A step in neither folder is a `UserError`."""
        with self._writes_reported():
            self.last.wait_until_finished()
            self.best.wait_until_finished()
        for manager in (self.last, self.best):
            if step in manager.all_steps():
                return self._read(manager, step, abstract_state)
        raise UserError(f"checkpoint {step} is not kept under {self.root} (steps there: "
                        f"{sorted(set(self.last.all_steps()) | set(self.best.all_steps()))})")

    def restore_best(self, abstract_state) -> Optional[Tuple[Any, Dict]]:
        """(state, record) of the best readable checkpoint, or None. A damaged best step
        is read from `last` when that still holds it (every best step was saved to both).
        Saves still being written finish first: the best step may be the one just saved,
        and a step read half-written would be taken for damage."""
        with self._writes_reported():
            self.last.wait_until_finished()
            self.best.wait_until_finished()
        return self._restore(self.best, abstract_state, copies=self.last)

    def close(self) -> None:
        with self._writes_reported():
            self.last.wait_until_finished()
            self.best.wait_until_finished()
            self.last.close()
            self.best.close()


def _rank(metrics: Dict[str, float]) -> float:
    """Orbax's order of the best steps: the rank saved with each (steps saved before
    ranks existed hold their validation accuracy, at most 1: below any epoch's rank)."""
    return float(metrics.get("rank", metrics.get("valid_accuracy", 0.0)))


def write_failure(error: BaseException) -> Optional[str]:
    """The operating system's reason when `error` (or one it came from) is a failed
    write — an OSError, or TensorStore's message with its `os_error_code` — else None."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno:
            return os.strerror(error.errno)
        code = re.search(r"os_error_code='?(\d+)", str(error))
        if code:
            return os.strerror(int(code.group(1)))
        error = error.__cause__ or error.__context__
    return None


def abstract(state):
    """Shape/dtype/sharding stand-ins of a state, for restoring onto the same layout."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


def steps_in(directory: str) -> List[int]:
    """The steps saved in `directory`, newest first ([] when it is not there); a folder
    the OS will not list is a `UserError`."""
    if not os.path.isdir(directory):
        return []
    try:
        names = os.listdir(directory)
    except OSError as e:
        raise check.unreadable(f"the checkpoints in {directory}", e.errno, directory) from None
    return sorted((int(d) for d in names if d.isdigit()), reverse=True)


def restore_best(workdir: str, abstract_state, warn: Callable[[str], None] = _warn):
    """The best readable train state of a finished run in `workdir` (what predict
    serves), read-only: a damaged best step is skipped with a warning — the same step in
    `last` used when it is there, else the next best — and nothing is moved or written.
    Another model's checkpoint, a file that cannot be opened, or no readable step: a
    `UserError` naming the folder and the fix."""
    root = os.path.join(os.path.abspath(workdir), "checkpoints")
    best_dir, last_dir = os.path.join(root, "best"), os.path.join(root, "last")
    if not os.path.isdir(best_dir):
        raise UserError(f"no checkpoint in {best_dir}: --workdir must be the folder of a "
                        f"finished training run")
    in_last = steps_in(last_dir)
    for step in steps_in(best_dir):
        for directory in (best_dir, last_dir) if step in in_last else (best_dir,):
            try:
                return check.read_step(os.path.join(directory, str(step)), abstract_state,
                                       f"checkpoint {step} in {directory}")[0]
            except Damaged as e:
                then = (f"reading the same step in {last_dir}" if directory == best_dir
                        and step in in_last else "trying the one before it")
                warn(f"checkpoint {step} in {directory} cannot be restored ({e}); left in "
                     f"place; {then}")
    raise UserError(f"no readable checkpoint in {best_dir} (every step there is damaged: see "
                    f"the warnings above): train again into a new --workdir")
