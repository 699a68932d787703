"""A local folder of audio as a source: GTZAN in any of its layouts (the Kaggle copy's
`genres_original/`, the original tarball's `genres/`), or any `<root>/<class>/<files>`.
Every file is decoded once to validate it; the unusable ones go into the report."""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from jaxgenre import audio
from jaxgenre.data.types import ClipRef, DataReport, DataSourceError, Source

AUDIO_EXTENSIONS = (".wav", ".au", ".snd", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif",
                    ".aiff", ".m4a")
GTZAN_HELP = (
    "Expected GTZAN's layout: <root>/genres_original/<genre>/<genre>.000NN.wav (the Kaggle "
    "copy, 'GTZAN Dataset - Music Genre Classification'), <root>/genres/<genre>/"
    "<genre>.000NN.au (the original marsyas.info tarball genres.tar.gz), or any "
    "<root>/<class>/<audio files> folder. Download GTZAN, unpack it, and pass the folder "
    "with --config.data.root=PATH.")


def check_audio(path: str, *, sr: int, min_seconds: float) -> Tuple[Optional[str], float]:
    """(why the file cannot be used or None, its duration in seconds): it must decode
    and last at least `min_seconds`. Every source that reads files validates with it."""
    try:
        y = audio.load_audio(path, sr=sr)
    except audio.AudioDecodeError as e:
        return e.reason, 0.0
    seconds = y.size / sr
    if seconds < min_seconds:
        return f"too short: {seconds:.2f} s < min_seconds={min_seconds:g} s", seconds
    return None, seconds


def find_class_root(root: str) -> str:
    """The folder whose sub-folders are the classes, for every layout GTZAN ships in."""
    if not os.path.isdir(root):
        raise DataSourceError(f"data root '{root}' does not exist or is not a folder. "
                              + GTZAN_HELP)
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
            raise DataSourceError(f"no audio files under '{self.class_root}'. " + GTZAN_HELP)
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
        return check_audio(path, sr=self.sr, min_seconds=min_seconds)

    def _load(self, ref: ClipRef) -> np.ndarray:
        return audio.load_audio(ref.locator, sr=self.sr)

    def identity(self) -> dict:
        return {"source": "folder", "root": self.class_root}
