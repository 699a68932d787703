"""Where clips come from: a local GTZAN folder, TFDS `gtzan`, or the built-in synthetic set.

All sources share one small interface: `class_names`, `clips` (the usable clips as
`ClipRef`s), `report` (a `DataReport` listing what was rejected and why) and
`load(ref)` → float32 audio of exactly `clip_seconds` at `sr`. Iterating a source
yields `(clip_id, label_index, audio)`. Clip ids are `<class>/<file stem>`, e.g.
`jazz/jazz.00054`, the same for GTZAN's `.wav` and `.au` copies and for TFDS, so split
lists and caches carry across layouts.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from jaxgenre import audio
from jaxgenre.data import synthetic
from jaxgenre.data.report import DataReport

SOURCES = ("synthetic", "folder", "tfds")
AUDIO_EXTENSIONS = (".wav", ".au", ".snd", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif",
                    ".aiff", ".m4a")
_GTZAN_HELP = (
    "Expected GTZAN's layout: <root>/genres_original/<genre>/<genre>.000NN.wav (the Kaggle "
    "copy, 'GTZAN Dataset - Music Genre Classification'), <root>/genres/<genre>/"
    "<genre>.000NN.au (the original marsyas.info tarball genres.tar.gz), or any "
    "<root>/<class>/<audio files> folder. Download GTZAN, unpack it, and pass the folder "
    "with --config.data.root=PATH.")


class DataSourceError(ValueError):
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


class SyntheticSource(Source):
    """The built-in genre set (`synthetic.py`): nothing to download, nothing rejected."""
    name = "synthetic"

    def __init__(self, *, clips_per_class: int = 20, seconds: float = 30.0, seed: int = 0,
                 sr: int = 22050, clip_seconds: Optional[float] = None):
        super().__init__(sr=sr, clip_seconds=clip_seconds or seconds)
        if clips_per_class < 1 or seconds <= 0:
            raise DataSourceError(f"synthetic data needs clips_per_class >= 1 and seconds > 0, "
                                  f"got {clips_per_class} and {seconds}")
        self.clips_per_class, self.seconds, self.seed = clips_per_class, seconds, seed
        self.class_names = synthetic.CLASS_NAMES
        ids, labels = synthetic.clip_ids(clips_per_class)
        self.clips = tuple(ClipRef(i, int(l), n % clips_per_class)
                           for n, (i, l) in enumerate(zip(ids, labels)))
        self.report = DataReport(source="synthetic", class_names=list(self.class_names))
        for ref in self.clips:
            self.report.accept(self.class_names[ref.label], seconds)
        self.report.notes.append(f"generated from seed {seed}: {clips_per_class} clips per "
                                 f"class of {seconds:g} s")

    def _load(self, ref: ClipRef) -> np.ndarray:
        return synthetic.generate_clip(ref.label, ref.locator, seed=self.seed,
                                       seconds=self.seconds, sr=self.sr)

    def identity(self) -> dict:
        return {"source": "synthetic", "seed": self.seed, "seconds": self.seconds,
                "version": synthetic.VERSION}


def find_class_root(root: str) -> str:
    """The folder whose sub-folders are the classes, for every layout GTZAN ships in."""
    if not os.path.isdir(root):
        raise DataSourceError(f"data root '{root}' does not exist or is not a folder. "
                              + _GTZAN_HELP)
    for sub in ("genres_original", "genres", os.path.join("Data", "genres_original")):
        if os.path.isdir(os.path.join(root, sub)):
            return os.path.join(root, sub)
    return root


class FolderSource(Source):
    """`<root>/<class>/<files>`; every file is decoded once to validate it."""
    name = "folder"

    def __init__(self, root: str, *, sr: int = 22050, min_seconds: float = 10.0,
                 clip_seconds: float = 30.0, progress: bool = True):
        super().__init__(sr=sr, clip_seconds=clip_seconds)
        self.root = os.path.abspath(os.path.expanduser(root))
        self.class_root = find_class_root(self.root)
        self.class_names = tuple(sorted(
            d for d in os.listdir(self.class_root)
            if os.path.isdir(os.path.join(self.class_root, d)) and not d.startswith(".")))
        files = [(c, os.path.join(self.class_root, c, f)) for c in self.class_names
                 for f in sorted(os.listdir(os.path.join(self.class_root, c)))]
        if not any(p.lower().endswith(AUDIO_EXTENSIONS) for _, p in files):
            raise DataSourceError(f"no audio files under '{self.class_root}'. " + _GTZAN_HELP)
        self.report = DataReport(source="folder", location=self.class_root,
                                 class_names=list(self.class_names))
        clips: List[ClipRef] = []
        for class_name, path in tqdm(files, desc="validating audio", unit="file",
                                     disable=not progress):
            reason, seconds = self._validate(path, min_seconds)
            if reason:
                self.report.reject(os.path.relpath(path, self.class_root), reason)
                continue
            stem = os.path.splitext(os.path.basename(path))[0]
            clips.append(ClipRef(f"{class_name}/{stem}", self.class_names.index(class_name), path))
            self.report.accept(class_name, seconds)
        self.clips = tuple(clips)

    def _validate(self, path: str, min_seconds: float) -> Tuple[Optional[str], float]:
        if os.path.isdir(path):
            return "a folder inside a class folder (nested folders are not read)", 0.0
        if not path.lower().endswith(AUDIO_EXTENSIONS):
            return f"not an audio file (extension '{os.path.splitext(path)[1]}')", 0.0
        try:
            y = audio.load_audio(path, sr=self.sr)
        except audio.AudioDecodeError as e:
            return e.reason, 0.0
        seconds = y.size / self.sr
        if seconds < min_seconds:
            return f"too short: {seconds:.2f} s < min_seconds={min_seconds:g} s", seconds
        return None, seconds

    def _load(self, ref: ClipRef) -> np.ndarray:
        return audio.load_audio(ref.locator, sr=self.sr)

    def identity(self) -> dict:
        return {"source": "folder", "root": self.class_root}


def open_source(name: str, *, root: Optional[str] = None, tfds_dir: Optional[str] = None,
                sr: int = 22050, min_seconds: float = 10.0, clip_seconds: float = 30.0,
                clips_per_class: int = 20, synthetic_seconds: float = 30.0, seed: int = 0,
                progress: bool = True) -> Source:
    """Builds a source by name; `create_source(config)` is the config-driven form."""
    if name == "synthetic":
        return SyntheticSource(clips_per_class=clips_per_class, seconds=synthetic_seconds,
                               seed=seed, sr=sr, clip_seconds=clip_seconds)
    if name == "folder":
        if not root:
            raise DataSourceError("data.source='folder' needs a root: pass "
                                  "--config.data.root=PATH. " + _GTZAN_HELP)
        return FolderSource(root, sr=sr, min_seconds=min_seconds, clip_seconds=clip_seconds,
                            progress=progress)
    if name == "tfds":
        from jaxgenre.data import tfds_gtzan

        return tfds_gtzan.TfdsSource(tfds_dir, sr=sr, min_seconds=min_seconds,
                                     clip_seconds=clip_seconds, progress=progress)
    raise DataSourceError(f"unknown data source {name!r}; expected one of {SOURCES}")


def create_source(config, progress: bool = True) -> Source:
    """The source `config.data` describes (features.sr sets the sample rate)."""
    data = config.data
    return open_source(data.source, root=data.root, tfds_dir=data.tfds_dir,
                       sr=config.features.sr, min_seconds=data.min_seconds,
                       clip_seconds=data.clip_seconds,
                       clips_per_class=data.synthetic.clips_per_class,
                       synthetic_seconds=data.synthetic.seconds, seed=config.seed,
                       progress=progress)


def labels_of(clips: Sequence[ClipRef]) -> np.ndarray:
    return np.array([c.label for c in clips], dtype=np.int32)
