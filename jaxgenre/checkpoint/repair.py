"""Damage repair: what happens to a checkpoint step that `check` found damaged.

Kept apart from the save/restore policy (`jaxgenre.checkpoint`), which only says which
step it wants. Training *repairs*: a damaged step is moved aside into
`checkpoints/damaged/<last|best>_<step>_<time>` (kept for inspection, named in a
one-line warning) and the one before it — or the same step's copy in the other folder —
is read instead, so the run goes on and a later save of that step succeeds. Predict only
*skips*: `first_readable` reads, warns and moves nothing. Either way, another model's
checkpoint or a file the OS will not give is a `UserError` (from `check`), nothing moved.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import jax

from jaxgenre.checkpoint import check
from jaxgenre.checkpoint.check import Damaged
from jaxgenre.errors import UserError

Warn = Callable[[str], None]


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


def set_aside(root: str, directory: str, step: int, manager=None) -> str:
    """Moves step `step` of `directory` to `<root>/damaged/<folder>_<step>_<time>` (so
    that the step can be saved again), refreshes `manager`'s view of the folder, and
    returns where it went. In a multi-process run only process 0 moves it; the others
    wait for it."""
    source = os.path.join(directory, str(step))
    target = os.path.join(root, "damaged", f"{os.path.basename(directory)}_{step}_"
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


def screen(root: str, directory: str, warn: Warn) -> None:
    """Sets aside every step in `directory` whose small JSON files (orbax's step
    metadata, the record, the best's metrics) do not parse: orbax reads them when a
    manager opens the folder, and one damaged file would stop the run there. A file the
    OS refuses is a `UserError` (nothing moved)."""
    for step in sorted(steps_in(directory)):
        where = f"checkpoint {step} in {directory}"
        step_dir = os.path.join(directory, str(step))
        check.check_readable(step_dir, where)
        try:
            check.screen_json(step_dir, where)
        except Damaged as e:
            moved = set_aside(root, directory, step)
            warn(f"{where} cannot be read ({e}); moved to {moved}")


def read_managed(manager, step: int, abstract_state) -> Tuple[Any, Dict]:
    """(state, record) of `step` of an orbax manager, checked first (`check.read_step`)."""
    return check.read_step(
        os.path.join(str(manager.directory), str(step)), abstract_state,
        f"checkpoint {step} in {manager.directory}",
        restore=lambda args: manager.restore(step, args=args))


def newest_repaired(root: str, manager, abstract_state, warn: Warn,
                    copies=None) -> Optional[Tuple[Any, Dict]]:
    """The newest readable step of `manager`, repairing on the way: a damaged step is
    set aside and, when `copies` (another manager) holds the same step, that copy is
    read instead, else the step before. None when no step is left."""
    for step in sorted(manager.all_steps(), reverse=True):
        try:
            return read_managed(manager, step, abstract_state)
        except Damaged as e:
            moved = set_aside(root, str(manager.directory), step, manager)
            copy = copies is not None and step in copies.all_steps()
            warn(f"checkpoint {step} in {manager.directory} cannot be restored ({e}); moved "
                 f"to {moved}; " + (f"reading the same step in {copies.directory}" if copy
                                    else "trying the one before it"))
            if copy:
                try:
                    return read_managed(copies, step, abstract_state)
                except Damaged:  # damaged there too: its own restore sets it aside
                    pass
    return None


def first_readable(best_dir: str, last_dir: str, abstract_state,
                   warn: Warn) -> Optional[Any]:
    """The state of the best readable step in `best_dir`, read-only: a damaged step is
    skipped with a warning — its copy in `last_dir` read when there is one, else the
    next best — and nothing is moved or written. None when every step is damaged."""
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
    return None
