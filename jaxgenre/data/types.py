"""The data layer's shared vocabulary, imported by every source and by nothing it
imports back: the data report, a clip reference, the source interface and its error.

All sources share one small interface: `class_names`, `clips` (the usable clips as
`ClipRef`s), `report` (a `DataReport` listing what was rejected and why) and
`load(ref)` → float32 audio of exactly `clip_seconds` at `sr`. Iterating a source
yields `(clip_id, label_index, audio)`. Clip ids are `<class>/<file stem>`, e.g.
`jazz/jazz.00054`, the same for GTZAN's `.wav` and `.au` copies and for TFDS, so split
lists and caches carry across layouts.

The data report is what a data set holds and every file it could not use, with why.
Every run builds one (sources fill it in while they validate), prints it at start-up
and writes it as JSON to the work directory, so nothing is ever dropped silently.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from jaxgenre import audio
from jaxgenre.errors import UserError


@dataclasses.dataclass
class DataReport:
    """Usable clips per class and every rejected file with its reason."""
    source: str
    location: Optional[str] = None
    class_names: List[str] = dataclasses.field(default_factory=list)
    clip_counts: Dict[str, int] = dataclasses.field(default_factory=dict)
    total_seconds: float = 0.0
    rejected: List[Dict[str, str]] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)

    def reject(self, item: str, reason: str) -> None:
        self.rejected.append({"file": item, "reason": reason})

    def accept(self, class_name: str, seconds: float) -> None:
        self.clip_counts[class_name] = self.clip_counts.get(class_name, 0) + 1
        self.total_seconds += seconds

    @property
    def usable(self) -> int:
        return sum(self.clip_counts.values())

    def empty_classes(self) -> List[str]:
        return [c for c in self.class_names if self.clip_counts.get(c, 0) == 0]

    def ok(self) -> bool:
        return bool(self.class_names) and not self.empty_classes()

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self) | {"usable_clips": self.usable}

    def write_json(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def format(self) -> str:
        where = f" at {self.location}" if self.location else ""
        lines = [f"data: {self.source}{where}: {self.usable} usable clips in "
                 f"{len(self.class_names)} classes, {self.total_seconds / 3600:.2f} h of audio"]
        width = max((len(c) for c in self.class_names), default=0)
        for name in self.class_names:
            lines.append(f"  {name:<{width}}  {self.clip_counts.get(name, 0):5d}")
        if self.rejected:
            lines.append(f"  rejected ({len(self.rejected)}):")
            lines.extend(f"    {r['file']}: {r['reason']}" for r in self.rejected)
        else:
            lines.append("  rejected: none")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


class DataSourceError(UserError):
    """A data set that cannot be used at all (missing root, no audio, bad settings)."""


@dataclasses.dataclass(frozen=True)
class ClipRef:
    clip_id: str  # "<class>/<stem>"
    label: int
    locator: object  # a path (folder), a record index (tfds), a clip index (synthetic)


class Source:
    """The interface every source implements; see the module docstring."""
    name: str
    class_names: Tuple[str, ...]
    clips: Tuple[ClipRef, ...]
    report: DataReport
    # The split `data.split=None` means for this source, and the source's own clip id →
    # part assignment when it ships one (FMA's set.split); None when it does not.
    default_split: str = "random"
    official_split: Optional[Dict[str, str]] = None

    def __init__(self, *, sr: int, clip_seconds: float):
        self.sr, self.clip_seconds = sr, clip_seconds

    def _load(self, ref: ClipRef) -> np.ndarray:
        raise NotImplementedError

    def load(self, ref: ClipRef) -> np.ndarray:
        """The clip's audio, float32, exactly `clip_seconds` long (cropped or zero-padded)."""
        return audio.fix_length(self._load(ref), self.clip_seconds, self.sr)

    def identity(self) -> dict:
        """What makes this source's audio what it is (part of the feature cache key)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Tuple[str, int, np.ndarray]]:
        for ref in self.clips:
            yield ref.clip_id, ref.label, self.load(ref)
