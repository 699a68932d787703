"""The Free Music Archive data set (mdeff/fma) as a source: `--config.data.source=fma`,
`--config.data.fma.subset=small|medium|large`.

Fetched into the data home: `fma_metadata.zip` (tracks.csv) and `fma_<subset>.zip`
(30 s mp3 clips, `fma_<subset>/<first 3 digits>/<6-digit id>.mp3`), each verified
against the sha1 the FMA README publishes, unpacked once. Labels are each track's
top-level genre (`track.genre_top`); the subset is `set.subset` (small ⊂ medium ⊂
large); the official split is `set.split` (training / validation / test), which is
`data.split`'s default for FMA ('official'). Every listed track is decoded once to
validate it: unreadable or too-short mp3s (FMA has some) go into the data report with
the reason, never a crash, never silently dropped.

`tracks.csv` has a two-row header (column group, column name) and a third row naming
the index (`track_id`); it is read with the `csv` module (pandas is not a core pin).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from jaxgenre.data import archive, download
from jaxgenre.data.audio_checks import CheckedAudio
from jaxgenre.data.types import (ClipRef, DataReport, DataSourceError, Source,
                                 duplicate_reason)

SUBSETS = ("small", "medium", "large")
# The mirrors and each archive's sha1 live in configs/base.py (`config.data.fma`).
OFFICIAL_PARTS = {"training": "train", "validation": "valid", "test": "test"}


@dataclasses.dataclass(frozen=True)
class Track:
    track_id: int
    genre_top: str
    split: str  # training | validation | test
    subset: str  # small | medium | large


def read_tracks(path: str) -> List[Track]:
    """The rows of FMA's tracks.csv that jaxgenre needs; a file that is not one (empty,
    not UTF-8, not CSV, a column short) is a `DataSourceError` naming it."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return _tracks(path, csv.reader(f))
    except (StopIteration, UnicodeDecodeError, csv.Error) as e:
        reason = "it ends before its two header rows" if isinstance(e, StopIteration) else e
        raise DataSourceError(f"'{path}' is not FMA's tracks.csv ({reason}): delete the "
                              f"unpacked metadata folder and fetch fma_metadata.zip "
                              f"again") from None


def _tracks(path: str, rows) -> List[Track]:
    groups, names = next(rows), next(rows)
    columns, group = [], ""
    for g, n in zip(groups, names):
        group = g or group
        columns.append((group, n))
    try:
        at = {key: columns.index(key) for key in
              (("track", "genre_top"), ("set", "split"), ("set", "subset"))}
    except ValueError as e:
        raise DataSourceError(f"'{path}' is not FMA's tracks.csv (no column {e}); "
                              f"fetch fma_metadata.zip again") from None
    tracks = []
    for row in rows:
        if not row or not row[0].strip().isdigit():  # the 'track_id' index-name row
            continue
        if len(row) != len(columns):
            raise DataSourceError(
                f"'{path}' line {rows.line_num} has {len(row)} columns, not "
                f"{len(columns)}: a damaged tracks.csv; delete the unpacked metadata "
                f"folder and fetch fma_metadata.zip again")
        tracks.append(Track(int(row[0]), row[at[("track", "genre_top")]],
                            row[at[("set", "split")]], row[at[("set", "subset")]]))
    return tracks


def audio_path(audio_dir: str, track_id: int) -> str:
    tid = f"{track_id:06d}"
    return os.path.join(audio_dir, tid[:3], tid + ".mp3")


def _asset(part: str, mirrors: Sequence[str], sha1: Optional[str]) -> download.Asset:
    file = "fma_metadata.zip" if part == "metadata" else f"fma_{part}.zip"
    urls = tuple(m if m.endswith(".zip") and part in os.path.basename(m)
                 else m.rstrip("/") + "/" + file for m in mirrors)
    return download.Asset(name=f"FMA {part} ({file})", file=file, urls=urls, sha1=sha1)


def fetch_fma(subset: str, *, home: Optional[str] = None, mirrors: Sequence[str],
              sha1: Dict[str, Optional[str]], progress: bool = True,
              limits: Optional[archive.Limits] = None,
              transfer: Optional[download.TransferLimits] = None) -> Tuple[str, str]:
    """(tracks.csv path, audio folder) of FMA `subset`, fetched and unpacked if needed.
    `mirrors` are folders (URLs, file:// URLs or paths) holding the archives; `limits`
    and `transfer` cap the unpacking and the fetch (`config.data.archive` / `.download`;
    defaults if None)."""
    if subset not in SUBSETS:
        raise DataSourceError(f"config.data.fma.subset must be one of {', '.join(SUBSETS)}; "
                              f"got {subset!r}")
    home = download.data_home(home)
    transfer = transfer or download.TransferLimits.from_config()
    unpacked = {}
    for part in ("metadata", subset):
        target = os.path.join(home, "fma", part)
        if not os.path.isdir(target):
            path = download.fetch(_asset(part, mirrors, sha1.get(part)), home,
                                  progress=progress, max_bytes=transfer.max_bytes,
                                  deadline=transfer.deadline_seconds)
            archive.extract(path, target, limits=limits)
        unpacked[part] = target
    tracks_csv = os.path.join(unpacked["metadata"], "fma_metadata", "tracks.csv")
    audio_dir = os.path.join(unpacked[subset], f"fma_{subset}")
    for path in (tracks_csv, audio_dir):
        if not os.path.exists(path):
            raise DataSourceError(f"'{path}' is missing after unpacking FMA; delete "
                                  f"{os.path.join(home, 'fma')} and fetch it again")
    return tracks_csv, audio_dir


class FmaSource(Source):
    """FMA `subset`: tracks of that subset (and the smaller ones it contains) with a
    top-level genre; clip ids `<genre>/<6-digit id>`."""
    name = "fma"
    default_split = "official"

    def __init__(self, tracks_csv: str, audio_dir: str, *, subset: str = "small",
                 sr: int = 22050, min_seconds: float = 10.0, clip_seconds: float = 30.0,
                 progress: bool = True, home: Optional[str] = None):
        super().__init__(sr=sr, clip_seconds=clip_seconds)
        self.subset, self.audio_dir = subset, audio_dir
        self._checks = CheckedAudio(audio_dir, sr=sr, min_seconds=min_seconds,
                                    clip_seconds=clip_seconds, home=home)
        rank = SUBSETS.index(subset)
        tracks = [t for t in read_tracks(tracks_csv)
                  if t.subset in SUBSETS and SUBSETS.index(t.subset) <= rank and t.genre_top]
        self.class_names = tuple(sorted({t.genre_top for t in tracks}))
        self.report = DataReport(source="fma", location=audio_dir,
                                 class_names=list(self.class_names))
        self.report.notes.append(f"FMA {subset}: {len(tracks)} tracks with a top-level genre "
                                 f"in tracks.csv")
        clips: List[ClipRef] = []
        self.official_split: Dict[str, str] = {}
        seen: Dict[int, str] = {}  # track id -> its first row's clip id
        for t in tqdm(tracks, desc="validating audio", unit="file", disable=not progress):
            path = audio_path(audio_dir, t.track_id)
            clip_id = f"{t.genre_top}/{t.track_id:06d}"
            if t.track_id in seen:  # one file listed twice in tracks.csv
                first = seen[t.track_id]
                where = os.path.relpath(path, audio_dir)
                self.report.reject(where, duplicate_reason(where, clip_id) if first == clip_id
                                   else f"listed again in tracks.csv as {clip_id}; the file is "
                                        f"already clip {first}; not used")
                continue
            seen[t.track_id] = clip_id
            reason, seconds = self._validate(path, min_seconds)
            if reason:
                self.report.reject(os.path.relpath(path, audio_dir), reason)
                continue
            clips.append(ClipRef(clip_id, self.class_names.index(t.genre_top), path))
            self.report.accept(t.genre_top, seconds)
            self.official_split[clip_id] = OFFICIAL_PARTS.get(t.split, "")
        self.clips = tuple(clips)
        self._checks.finish(self.report)

    def _validate(self, path: str, min_seconds: float) -> Tuple[Optional[str], float]:
        if not os.path.isfile(path):
            return "listed in tracks.csv but not in the archive", 0.0
        return self._checks.check(path)

    def _load(self, ref: ClipRef) -> np.ndarray:
        return self._checks.load(ref.locator, self.clip_seconds)  # the clip only

    def identity(self) -> dict:
        return {"source": "fma", "subset": self.subset, "audio_dir": self.audio_dir}
