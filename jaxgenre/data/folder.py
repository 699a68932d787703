"""A local folder of audio as a source: GTZAN in any of its layouts (the Kaggle copy's
`genres_original/`, the original tarball's `genres/`), or any `<root>/<class>/<files>`.
Every file is decoded once to validate it (and again only when it changed: `audio_checks`);
the unusable ones go into the report.

A clip id is `<class>/<file stem>`, so `jazz.00001.wav` and `jazz.00001.au` in one class
folder are the same clip, and so are `Jazz.00001.WAV` and `jazz.00001.wav`: stems that
differ only in case are one id (one recording, renamed or copied from a case-insensitive
disk), spelt as the kept file spells it. Of several audio files with one id, the clip is
the first usable one in the order of `AUDIO_EXTENSIONS` (.wav, .au, .snd, .flac, ...),
then of name; each other one is listed in the report as "duplicate of <that file>" without being
decoded, and is not used. One that cannot be used is rejected for its own reason and
leaves the id to the next. Clips are listed in file-name order whatever the choice.

An entry that cannot be read (a dangling or looping symlink, a FIFO, a device, EACCES,
removed while validating) is a rejected row with its reason (`audio.check_clip`); a
class folder that cannot be listed stops the run in one line naming it."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from jaxgenre.data.audio_checks import CheckedAudio
from jaxgenre.data.types import (ClipRef, DataReport, DataSourceError, Source,
                                 duplicate_reason)

AUDIO_EXTENSIONS = (".wav", ".au", ".snd", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif",
                    ".aiff", ".m4a")
GTZAN_HELP = (
    "Expected GTZAN's layout: <root>/genres_original/<genre>/<genre>.000NN.wav (the Kaggle "
    "copy, 'GTZAN Dataset - Music Genre Classification'), <root>/genres/<genre>/"
    "<genre>.000NN.au (the original marsyas.info tarball genres.tar.gz), or any "
    "<root>/<class>/<audio files> folder. Download GTZAN, unpack it, and pass the folder "
    "with --config.data.root=PATH.")


def find_class_root(root: str) -> str:
    """The folder whose sub-folders are the classes, for every layout GTZAN ships in."""
    if not os.path.isdir(root):
        raise DataSourceError(f"data root '{root}' does not exist or is not a folder. "
                              + GTZAN_HELP)
    for sub in ("genres_original", "genres", os.path.join("Data", "genres_original")):
        if os.path.isdir(os.path.join(root, sub)):
            return os.path.join(root, sub)
    return root


def _list(folder: str, what: str) -> List[str]:
    """os.listdir, an OSError (EACCES, removed meanwhile) one line naming the folder."""
    try:
        return os.listdir(folder)
    except OSError as e:
        raise DataSourceError(f"cannot list the {what} '{folder}': {e.strerror or e}; make "
                              f"it readable (chmod u+rx) or move it out of the data "
                              f"root") from None


def _preference(path: str) -> int:
    """Rank of a file among files with its clip id: its extension's place in
    AUDIO_EXTENSIONS (.wav first: lossless, and what TFDS's builder reads); any other
    file after every audio file."""
    ext = os.path.splitext(path)[1].lower()
    return AUDIO_EXTENSIONS.index(ext) if ext in AUDIO_EXTENSIONS else len(AUDIO_EXTENSIONS)


class FolderSource(Source):
    """`<root>/<class>/<files>`; every file is decoded once to validate it."""
    name = "folder"

    def __init__(self, root: str, *, sr: int = 22050, min_seconds: float = 10.0,
                 clip_seconds: float = 30.0, progress: bool = True,
                 home: Optional[str] = None):
        super().__init__(sr=sr, clip_seconds=clip_seconds)
        self.root = os.path.abspath(os.path.expanduser(root))
        self.class_root = find_class_root(self.root)
        self._checks = CheckedAudio(self.class_root, sr=sr, min_seconds=min_seconds,
                                    clip_seconds=clip_seconds, home=home)
        self.class_names = tuple(sorted(
            d for d in _list(self.class_root, "data folder")
            if os.path.isdir(os.path.join(self.class_root, d)) and not d.startswith(".")))
        files = [(c, os.path.join(self.class_root, c, f)) for c in self.class_names
                 for f in sorted(_list(os.path.join(self.class_root, c), "class folder"))]
        if not any(p.lower().endswith(AUDIO_EXTENSIONS) for _, p in files):
            raise DataSourceError(f"no audio files under '{self.class_root}'. " + GTZAN_HELP)
        self.report = DataReport(source="folder", location=self.class_root,
                                 class_names=list(self.class_names))
        # Validated class by class in the order that decides which of several files
        # with one clip id is the clip (`_preference`); listed in name order after.
        order = sorted(range(len(files)), key=lambda i: (files[i][0], _preference(files[i][1]),
                                                          i))
        found: List[Tuple[int, ClipRef]] = []
        # (class, stem case-folded) -> (the file that is that clip, its clip id)
        kept: Dict[Tuple[str, str], Tuple[str, str]] = {}
        for i in tqdm(order, desc="validating audio", unit="file", disable=not progress):
            class_name, path = files[i]
            where = os.path.relpath(path, self.class_root)
            stem = os.path.splitext(os.path.basename(path))[0]
            clip_id, key = f"{class_name}/{stem}", (class_name, stem.casefold())
            if key in kept and _preference(path) < len(AUDIO_EXTENSIONS) \
                    and not os.path.isdir(path):
                first, first_id = kept[key]
                same = first_id if first_id == clip_id else f"{first_id}, ignoring case"
                self.report.reject(where, duplicate_reason(first, same))
                continue
            reason, seconds = self._validate(path, min_seconds)
            if reason:
                self.report.reject(where, reason)
                continue
            kept[key] = (where, clip_id)
            found.append((i, ClipRef(clip_id, self.class_names.index(class_name), path)))
            self.report.accept(class_name, seconds)
        self.clips = tuple(ref for _, ref in sorted(found, key=lambda f: f[0]))
        self._checks.finish(self.report)

    def _validate(self, path: str, min_seconds: float) -> Tuple[Optional[str], float]:
        if os.path.isdir(path):
            return "a folder inside a class folder (nested folders are not read)", 0.0
        if any(ord(c) < 32 or ord(c) == 127 for c in os.path.basename(path)):
            # the name becomes the clip id, written in reports and CSV rows line by line
            return "its name holds a control character (a newline or tab?): rename it", 0.0
        if not path.lower().endswith(AUDIO_EXTENSIONS):
            return f"not an audio file (extension '{os.path.splitext(path)[1]}')", 0.0
        return self._checks.check(path)

    def _load(self, ref: ClipRef) -> np.ndarray:
        return self._checks.load(ref.locator, self.clip_seconds)  # the clip only

    def identity(self) -> dict:
        return {"source": "folder", "root": self.class_root}
