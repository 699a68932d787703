"""The data layer's shared vocabulary, imported by every source and by nothing it
imports back: the data report, a clip reference, the source interface and its error.

All sources share one small interface: `class_names`, `clips` (the usable clips as
`ClipRef`s), `report` (a `DataReport` listing what was rejected and why) and
`load(ref)` → float32 audio of exactly `clip_seconds` at `sr`. Iterating a source
yields `(clip_id, label_index, audio)`. Clip ids are `<class>/<file stem>`, e.g.
`jazz/jazz.00054`, the same for GTZAN's `.wav` and `.au` copies and for TFDS, so split
lists and caches carry across layouts.

Clip ids are unique by construction: `Source.clips` is a property whose setter keeps the
first clip of each id and moves every later one into the report as "duplicate of ..."
(`unique_clips`), so no source, including one written later, can hand a split the same
clip twice (once in train, once in test). Sources that can do better (the folder source
skips a duplicate before decoding it) do so before assigning `clips`.

The data report is what a data set holds and every file it could not use, with why.
Every run builds one (sources fill it in while they validate), prints it at start-up
and writes it as JSON to the work directory, so nothing is ever dropped silently.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

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

    def __post_init__(self) -> None:
        # Every accept in order, so a clip dropped later (a duplicate id) is taken back
        # out exactly; an attribute, not a field, so it is not part of the JSON.
        self._accepted: List[Tuple[str, float]] = []

    def reject(self, item: str, reason: str) -> None:
        self.rejected.append({"file": item, "reason": reason})

    def accept(self, class_name: str, seconds: float) -> None:
        self.clip_counts[class_name] = self.clip_counts.get(class_name, 0) + 1
        self.total_seconds += seconds
        self._accepted.append((class_name, seconds))

    def withdraw(self, class_name: str, seconds: float) -> None:
        """Takes back one `accept` (a clip that turned out to be a duplicate)."""
        self.clip_counts[class_name] = self.clip_counts.get(class_name, 0) - 1
        self.total_seconds -= seconds

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
            json.dump(self.to_dict(), f, indent=2, allow_nan=False)

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


def duplicate_reason(first: str, clip_id: str) -> str:
    """The report's reason for a file whose clip id an earlier file already has."""
    return f"duplicate of {first} (same clip id {clip_id}); not used"


def describe_clip(ref: ClipRef, location: Optional[str]) -> str:
    """How the report names a clip: its file relative to the report's location, the
    file itself, or for a clip that is not a file its id and locator."""
    if isinstance(ref.locator, (str, os.PathLike)):
        path = os.fspath(ref.locator)
        if location and os.path.abspath(path).startswith(os.path.abspath(location) + os.sep):
            return os.path.relpath(path, location)
        return path
    return f"{ref.clip_id} (#{ref.locator})"


def unique_clips(clips: Sequence[ClipRef], report: Optional[DataReport],
                 class_names: Sequence[str] = ()) -> Tuple[ClipRef, ...]:
    """`clips` with every clip whose id an earlier clip has removed, each listed in
    `report` as a duplicate of the first (which is kept: the order the source listed
    them in decides, and sources list in sorted order). The report's counts are taken
    back exactly when its accepts line up with `clips` (every source accepts as it
    appends); otherwise the count is, and a note says the total duration is not."""
    clips = tuple(clips)
    first: Dict[str, ClipRef] = {}
    dropped: List[Tuple[int, ClipRef]] = []
    for i, ref in enumerate(clips):
        if ref.clip_id in first:
            dropped.append((i, ref))
        else:
            first[ref.clip_id] = ref
    if not dropped:
        return clips
    if report is None:
        raise DataSourceError(f"clip id(s) {', '.join(sorted({r.clip_id for _, r in dropped}))}"
                              f" named twice, and no data report to list the duplicates in")
    names = list(class_names)
    accepted = report._accepted
    aligned = len(accepted) == len(clips) and all(
        0 <= ref.label < len(names) and accepted[i][0] == names[ref.label]
        for i, ref in enumerate(clips))
    for i, ref in dropped:
        original = first[ref.clip_id]
        report.reject(describe_clip(ref, report.location),
                      duplicate_reason(describe_clip(original, report.location), ref.clip_id))
        if aligned:
            report.withdraw(*accepted[i])
        elif 0 <= ref.label < len(names) and report.clip_counts.get(names[ref.label], 0) > 0:
            report.withdraw(names[ref.label], 0.0)
    if not aligned:
        report.notes.append(f"{len(dropped)} duplicate clip(s) dropped; the total duration "
                            f"still counts them")
    return tuple(first.values())  # dicts keep insertion order: the source's order


class Source:
    """The interface every source implements; see the module docstring."""
    name: str
    class_names: Tuple[str, ...]
    report: DataReport
    # The split `data.split=None` means for this source, and the source's own clip id →
    # part assignment when it ships one (FMA's set.split); None when it does not.
    default_split: str = "random"
    official_split: Optional[Dict[str, str]] = None

    def __init__(self, *, sr: int, clip_seconds: float):
        self.sr, self.clip_seconds = sr, clip_seconds

    @property
    def clips(self) -> Tuple[ClipRef, ...]:
        """The usable clips, each clip id once (see the module docstring)."""
        return self._clips

    @clips.setter
    def clips(self, clips: Sequence[ClipRef]) -> None:
        self._clips = unique_clips(clips, getattr(self, "report", None),
                                   getattr(self, "class_names", ()))

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
