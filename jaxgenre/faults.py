"""Named fault points, for the fault tests: `JAXGENRE_FAULT_KILL=<point>:<n>` makes the
process kill itself with SIGKILL (as `kill -9` would) the n-th time it passes `point`.

The points: 'train_step' (before each training step), 'evaluate_batch' (before each
validation or test batch), 'checkpoint_save' (right after a checkpoint's asynchronous
save has started, while orbax still writes it). Without the variable a point costs one
dictionary lookup; nothing else in jaxgenre reads it. tests/test_faults.py uses it to
kill runs at exact places and checks that the resumed runs end where an uninterrupted
one does.
"""

from __future__ import annotations

import os
import signal
from typing import Dict, Optional, Tuple

VARIABLE = "JAXGENRE_FAULT_KILL"
_counts: Dict[str, int] = {}
_target: Optional[Tuple[str, int]] = None
_parsed = False


def _read_target() -> Optional[Tuple[str, int]]:
    value = os.environ.get(VARIABLE, "")
    if not value:
        return None
    name, _, count = value.partition(":")
    return name, int(count or 1)


def point(name: str) -> None:
    """Passes fault point `name`; kills the process here if the variable says so."""
    global _target, _parsed
    if not _parsed:
        _target, _parsed = _read_target(), True
    if _target is None or _target[0] != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == _target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
