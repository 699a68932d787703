"""Checkpoints with orbax: the last K train states, the best one by validation accuracy,
and resume at an epoch boundary.

Each checkpoint holds the whole `TrainState` (params, batch_stats, optimiser state,
step, rng) and a small JSON record of where the run was (the epochs completed, the best
validation accuracy so far). Training saves at the end of epochs, so a resumed run
restarts at the epoch after the newest checkpoint; since each epoch's batches depend
only on (seed, epoch), it ends exactly where an uninterrupted run would. A checkpoint
that cannot be read (truncated, corrupt) is skipped with a warning and the one before
it is used; `restore_best` (for predict) refuses it instead, naming it.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, Optional, Tuple

import jax
import orbax.checkpoint as ocp

from jaxgenre.errors import UserError


class Checkpoints:
    """`<workdir>/checkpoints/last` (keep the newest `keep`) and
    `<workdir>/checkpoints/best` (keep one: the best validation accuracy).

    Saves are asynchronous by default (orbax writes in a background thread while
    training goes on; `benchmarks/checkpoint.py` measures what that saves)."""

    def __init__(self, workdir: str, keep: int = 3, use_async: bool = True):
        root = os.path.abspath(os.path.join(workdir, "checkpoints"))
        # Both managers may save the same step; in a multi-process run their barriers
        # (named after the step) must not collide, hence one key prefix each.
        sync = lambda name: ocp.options.MultiprocessingOptions(barrier_sync_key_prefix=name)
        self.last = ocp.CheckpointManager(
            os.path.join(root, "last"), options=ocp.CheckpointManagerOptions(
                max_to_keep=max(1, keep), create=True, multiprocessing_options=sync("last"),
                enable_async_checkpointing=use_async))
        self.best = ocp.CheckpointManager(
            os.path.join(root, "best"), options=ocp.CheckpointManagerOptions(
                max_to_keep=1, create=True, best_fn=lambda m: m["valid_accuracy"],
                best_mode="max", multiprocessing_options=sync("best"),
                enable_async_checkpointing=use_async))

    def save(self, state, record: Dict[str, Any], *, best: bool = False) -> None:
        step = int(jax.device_get(state.step))
        args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  record=ocp.args.JsonSave(record))
        self.last.save(step, args=args, force=True)
        if best:
            self.best.save(step, args=args, force=True,
                           metrics={"valid_accuracy": float(record["best_valid_accuracy"])})

    def _restore(self, manager, abstract_state, strict: bool = False
                 ) -> Optional[Tuple[Any, Dict]]:
        for step in sorted(manager.all_steps(), reverse=True):
            try:
                restored = manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state),
                    record=ocp.args.JsonRestore()))
                return restored["state"], dict(restored["record"])
            except Exception as e:  # a damaged checkpoint: fall back to the one before
                if strict:
                    raise UserError(f"the best checkpoint in {manager.directory} cannot be "
                                    f"read ({type(e).__name__}: {e})") from None
                warnings.warn(f"checkpoint {step} in {manager.directory} cannot be restored "
                              f"({type(e).__name__}: {e}); trying the previous one")
        return None

    def restore_latest(self, abstract_state) -> Optional[Tuple[Any, Dict]]:
        """(state, record) of the newest readable checkpoint, or None."""
        return self._restore(self.last, abstract_state)

    def restore_best(self, abstract_state, strict: bool = False
                     ) -> Optional[Tuple[Any, Dict]]:
        """(state, record) of the best checkpoint, or None; with `strict`, a damaged
        one raises a `UserError` naming it instead of falling back."""
        return self._restore(self.best, abstract_state, strict)

    def close(self) -> None:
        self.last.wait_until_finished()
        self.best.wait_until_finished()
        self.last.close()
        self.best.close()


def abstract(state):
    """Shape/dtype/sharding stand-ins of a state, for restoring onto the same layout."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)


def restore_best(workdir: str, abstract_state):
    """The best train state of a finished run in `workdir` (what predict serves), or a
    `UserError` naming the folder and the fix."""
    best_dir = os.path.join(os.path.abspath(workdir), "checkpoints", "best")
    if not os.path.isdir(best_dir):
        raise UserError(f"no checkpoint in {best_dir}: --workdir must be the folder of a "
                        f"finished training run")
    ckpt = None
    try:
        ckpt = Checkpoints(workdir, use_async=False)
        restored = ckpt.restore_best(abstract_state, strict=True)
    except UserError as e:
        raise UserError(f"{e}; train again into a new --workdir") from None
    except Exception as e:  # orbax fails on damaged metadata before any restore
        raise UserError(f"the best checkpoint in {best_dir} cannot be read "
                        f"({type(e).__name__}: {e}); train again into a new --workdir") from None
    finally:
        if ckpt is not None:
            ckpt.close()
    if restored is None:
        raise UserError(f"no checkpoint in {best_dir}: --workdir must be the folder of a "
                        f"finished training run")
    return restored[0]
