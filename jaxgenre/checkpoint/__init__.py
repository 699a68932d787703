"""Checkpoints with orbax: the last K train states, the best one by validation accuracy,
and resume at an epoch boundary.

Each checkpoint holds the whole `TrainState` (params, batch_stats, optimiser state,
step, rng) and a small JSON record of where the run was (the epochs completed, the best
validation accuracy so far). Training saves at the end of epochs, so a resumed run
restarts at the epoch after the newest checkpoint; since each epoch's batches depend
only on (seed, epoch), it ends exactly where an uninterrupted run would.

This module is the policy: which steps are kept, which one a run resumes from or
serves, and what a failed write tells the user. Restoring is not repairing:
`checkpoint.check` tells a damaged step (bytes or JSON that cannot be read) from another
model's or an unreadable one before anything is read, and `checkpoint.repair` decides
what happens to a damaged one — set aside in training, skipped by predict (the two best
are kept, so there is one to fall back to). Orbax writes each step under a temporary
name and renames it when complete, so a save cut off by a kill leaves the steps before
it readable. Every save first checks that this run still holds its work directory
(`workdir_lock.check_everywhere`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from jaxgenre import faults
from jaxgenre.checkpoint import repair, workdir_lock
from jaxgenre.checkpoint.check import brief  # noqa: F401 - public here too
from jaxgenre.checkpoint.repair import steps_in  # noqa: F401 - public here too
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
            repair.screen(root, os.path.join(root, name), warn)
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

    def restore_latest(self, abstract_state) -> Optional[Tuple[Any, Dict]]:
        """(state, record) of the newest readable checkpoint, or None."""
        return repair.newest_repaired(self.root, self.last, abstract_state, self.warn)

    def restore_step(self, step: int, abstract_state) -> Tuple[Any, Dict]:
        """(state, record) of `step` as kept in `last` (or `best`), checked first: for
        looking back at one epoch of a finished run (`benchmarks/ablation_eval.py` keeps
        every epoch). A step in neither folder is a `UserError`."""
        with self._writes_reported():
            self.last.wait_until_finished()
            self.best.wait_until_finished()
        for manager in (self.last, self.best):
            if step in manager.all_steps():
                return repair.read_managed(manager, step, abstract_state)
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
        return repair.newest_repaired(self.root, self.best, abstract_state, self.warn,
                                      copies=self.last)

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
    state = repair.first_readable(best_dir, last_dir, abstract_state, warn)
    if state is not None:
        return state
    raise UserError(f"no readable checkpoint in {best_dir} (every step there is damaged: see "
                    f"the warnings above): train again into a new --workdir")
