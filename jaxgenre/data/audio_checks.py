"""Each audio file decoded once to validate it, not at every open of its source.

A source opens for every run, grid cell, fold and seed, and validating means decoding
the part of each file a clip uses (`audio.check_clip`): ~3 minutes for FMA-small on two
cores, every time. `CheckedAudio` remembers the files a check accepted, in one JSON file
per (data location, sr, min_seconds, clip_seconds) under the data home
(`<data home>/audio_checks/`), keyed by the file's absolute path, size, mtime_ns and
ctime_ns: a file rewritten, touched, renamed or re-permissioned since is checked again.
Rejections are never remembered (they are few and cheap, and a fix to the file must
show at the next open).

The data home rather than the feature cache's folder: that one defaults to the run's
own workdir, so a grid's cells or a rerun in a new workdir would not share it.

The file is input like any other: one that is damaged, too large, of another version
or holding malformed entries is ignored (each such entry checked again) and rewritten,
with one line in the data report; one that cannot be written costs only the speed-up.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import threading
from typing import Dict, List, Optional, Tuple

from jaxgenre import audio, strict_json
from jaxgenre.audio.read import AudioDecodeError
from jaxgenre.data import download

VERSION = 1
MAX_BYTES = 256 * 2**20  # FMA-large's ~106,000 entries take ~20 MB


MAX_SECONDS = 1e7  # a verdict's length above this is not a real file's (and sums to inf)


def _stamp(st: os.stat_result) -> List[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _decoders() -> List[str]:
    """The decoders' versions: another libsndfile or soxr may judge a file otherwise."""
    import soundfile
    import soxr

    return [VERSION, soundfile.__libsndfile_version__, soxr.__version__]


class CheckedAudio:
    """`check(path)` is `audio.check_clip(path, ...)`, answered from the file of earlier
    verdicts when the file is unchanged since; `save()` writes what this open learnt."""

    def __init__(self, location: str, *, sr: int, min_seconds: float, clip_seconds: float,
                 home: Optional[str] = None):
        self.sr, self.min_seconds, self.clip_seconds = sr, min_seconds, clip_seconds
        key = json.dumps([os.path.abspath(location), sr, float(min_seconds),
                          float(clip_seconds), _decoders()])
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        self.path = os.path.join(download.data_home(home), "audio_checks", f"{digest}.json")
        self.reused = self.decoded = 0
        self.problems: List[str] = []  # for the data report
        self._known = self._read()
        self._accepted: Dict[str, list] = {}
        self._lock = threading.Lock()

    def check(self, path: str) -> Tuple[Optional[str], float]:
        """(why the file cannot be a clip or None, its length in seconds)."""
        path = os.path.abspath(path)
        try:
            stamp = _stamp(os.stat(path))
        except OSError:  # check_clip words the reason
            stamp = None
        known = self._known.get(path)
        if stamp is not None and known is not None and known[:3] == stamp:
            self.reused += 1
            self._accepted[path] = known
            return None, known[3]
        self.decoded += 1
        reason, seconds = audio.check_clip(path, sr=self.sr, min_seconds=self.min_seconds,
                                           clip_seconds=self.clip_seconds)
        if reason is None and stamp is not None:
            self._accepted[path] = stamp + [float(seconds)]
        return reason, seconds

    def forget(self, path: str) -> str:
        """Drops a file whose load failed after a remembered verdict (changed in a way its
        stamp does not show, or a hostile entry), so the next open checks it again;
        returns the words for the error."""
        with self._lock:  # loads run in decoding threads
            self._accepted.pop(os.path.abspath(path), None)
            self._known = {}  # whatever was read, this open's verdicts are what is saved
            self.save()
        return (f"it had passed an earlier check (remembered in {self.path}); the next "
                f"run checks it again and lists it as rejected")

    def load(self, path: str, seconds: float):
        """`audio.load_clip` of an accepted file; when it fails, `forget`s it and says so."""
        try:
            return audio.load_clip(path, seconds, sr=self.sr)
        except AudioDecodeError as e:
            raise AudioDecodeError(path, f"{e.reason}; {self.forget(path)}") from None

    def summary(self) -> str:
        return (f"audio checks: {self.reused} file(s) unchanged since an earlier check, "
                f"{self.decoded} decoded ({self.path})")

    def save(self) -> None:
        """Writes this open's accepted files (those of earlier opens that are gone or
        changed drop out), atomically; a failure is one line in `problems`."""
        if self._accepted == self._known and not self.problems:
            return
        body = {"version": VERSION, "sr": self.sr, "min_seconds": self.min_seconds,
                "clip_seconds": self.clip_seconds, "files": self._accepted}
        try:
            strict_json.write(self.path, body)
        except OSError as e:
            self.problems.append(f"could not save the audio checks to {self.path}: "
                                 f"{e.strerror or e} (the next open decodes every file "
                                 f"again)")

    def finish(self, report) -> None:
        """Saves, and puts the summary and any problem in the source's data report."""
        self.save()
        report.notes.append(self.summary())
        report.notes.extend(self.problems)

    def _read(self) -> Dict[str, list]:
        """The remembered verdicts, each entry checked; {} when there is no file or it
        cannot be used (with the reason in `problems`)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except OSError as e:
            return self._ignore(f"unreadable ({e.strerror or e})")
        try:
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return self._ignore("not a regular file")
                text = f.read(MAX_BYTES + 1)
                if len(text) > MAX_BYTES:
                    return self._ignore(f"larger than {MAX_BYTES // 2**20} MB")
            body = json.loads(text.decode("utf-8"))
        except (OSError, ValueError, RecursionError) as e:
            return self._ignore(f"unreadable ({type(e).__name__})")
        if not isinstance(body, dict) or body.get("version") != VERSION \
                or not isinstance(body.get("files"), dict):
            return self._ignore("not a version-1 audio check file")
        known, bad = {}, 0
        for path, entry in body["files"].items():
            if self._valid(entry):
                known[path] = entry
            else:
                bad += 1
        if bad:
            self.problems.append(f"{self.path}: {bad} malformed entr(ies) ignored; those "
                                 f"files were checked again")
        return known

    def _valid(self, entry) -> bool:
        return (isinstance(entry, list) and len(entry) == 4
                and all(isinstance(v, int) and not isinstance(v, bool) for v in entry[:3])
                and entry[0] >= 0 and isinstance(entry[3], (int, float))
                and not isinstance(entry[3], bool) and math.isfinite(entry[3])
                and self.min_seconds <= entry[3] <= MAX_SECONDS)

    def _ignore(self, why: str) -> Dict[str, list]:
        self.problems.append(f"{self.path} ignored: {why}; every file was checked again "
                             f"and the file rewritten")
        return {}
