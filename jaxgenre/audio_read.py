"""The decoders behind `jaxgenre.audio`: libsndfile (soundfile) first, librosa's audioread
fallback second, each reading no more than asked and never trusting a header's length.

- A header is checked (sample rate, channels) before a single sample is read.
- libsndfile is read block by block (`BLOCK_SAMPLES` samples a read), so a header that
  declares more than the data holds (a FLAC claiming 36 days) never sizes an allocation:
  memory follows the audio decoded, at most `duration` x rate x channels. A stream that
  ends before its header says raises, naming both lengths.
- Frames are counted as librosa counts them: `int(offset * rate)` to skip and
  `int(duration * rate)` to read, so `audio.load_audio(..., duration=d)` equals
  `librosa.load(..., duration=d)`.
- audioread gets an open reader (librosa would otherwise retry libsndfile with the whole
  declared length) and stops at `duration` plus one second, which tells a cut.

`audio` is the interface; nothing else imports this module.
"""

from __future__ import annotations

import os
import warnings
from typing import NamedTuple, Optional, Tuple

import numpy as np

from jaxgenre import errors

# Sample rates a file may declare: telephone-grade 1 kHz-ish sources up to DXD-class
# 768 kHz. Anything else is a damaged header (a flipped bit made one 537 MHz), and
# resampling from it would give nothing, or gigabytes.
MIN_SR, MAX_SR = 1000, 768000
# Samples (all channels together) asked of libsndfile per read: 1 MiB of float32.
BLOCK_SAMPLES = 1 << 18


class AudioDecodeError(errors.UserError):
    """A file that exists but cannot be turned into usable audio samples. A UserError (so
    a ValueError): where no caller lists it as a skipped file, an entry point reports it
    in one line with exit status 2."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot decode audio file '{self.path}': {reason}")


class AudioInfo(NamedTuple):
    """What a file's header declares (`audio.info`); nothing is decoded to learn it."""
    samplerate: int
    channels: int
    frames: Optional[int]  # None: the header gives no exact length (audioread's estimate)
    format: str
    estimated_seconds: Optional[float] = None  # audioread's duration, where frames is None

    @property
    def seconds(self) -> Optional[float]:
        """The declared length in seconds, or None when the header does not say."""
        if self.frames is not None:
            return self.frames / self.samplerate
        return self.estimated_seconds


# (samples (frames, channels) float32, native rate, cut short by `duration`, header seconds)
Read = Tuple[np.ndarray, int, bool, Optional[float]]


def check_header(path: str, samplerate: float, channels: int) -> None:
    """Rejects what no decoder should act on, before a single sample is read."""
    if not MIN_SR <= samplerate <= MAX_SR:  # a damaged header, most likely
        raise AudioDecodeError(path, f"its header gives a sample rate of {samplerate} Hz, "
                               f"outside any audio format's {MIN_SR}-{MAX_SR} Hz: damaged?")
    if channels < 1:
        raise AudioDecodeError(path, f"its header gives {channels} channels: damaged?")


def read_header(path: str) -> AudioInfo:
    """The header alone, by libsndfile, else by audioread; AudioDecodeError when neither
    recognises the file or the header is impossible."""
    import soundfile as sf

    try:
        header = sf.info(path)
        if header.format == "RAW":
            raise RuntimeError("no recognisable audio header")
        found = AudioInfo(int(header.samplerate), int(header.channels),
                          max(int(header.frames), 0), header.format)
    except Exception as sf_error:
        try:
            import audioread

            with audioread.audio_open(path) as f:
                found = AudioInfo(int(f.samplerate), int(f.channels), None, "audioread",
                                  float(f.duration) if f.duration else None)
        except Exception as fallback_error:
            raise AudioDecodeError(path, both_failed(sf_error, fallback_error)) from None
    check_header(path, found.samplerate, found.channels)
    return found


def _read_blocks(f, limit: Optional[int]) -> np.ndarray:
    """Up to `limit` frames (None: to the end) from an open SoundFile, block by block."""
    block = max(1, BLOCK_SAMPLES // f.channels)
    parts, got = [], 0
    while limit is None or got < limit:
        want = block if limit is None else min(block, limit - got)
        try:
            part = f.read(frames=want, dtype="float32", always_2d=True)
        except Exception as e:  # libsndfile ran off the real data (a truncated stream)
            raise RuntimeError(
                f"its data ends after {got / f.samplerate:.2f} s though its header declares "
                f"{f.frames / f.samplerate:.6g} s: truncated or damaged "
                f"({one_line(e)})") from None
        if part.shape[0]:
            parts.append(part)
            got += part.shape[0]
        if part.shape[0] < want:
            break
    if not parts:
        return np.zeros((0, f.channels), np.float32)
    # A short last read is a view of a whole block: copy (concatenate does) to let it go.
    return np.concatenate(parts) if len(parts) > 1 else parts[0].copy()


def read_soundfile(path: str, offset: float, duration: Optional[float]) -> Read:
    """libsndfile; raises RuntimeError (libsndfile's, or a truncated stream) or
    AudioDecodeError (a header nothing should decode, an offset past the end)."""
    import soundfile as sf

    with sf.SoundFile(path) as f:
        if f.format == "RAW":  # libsndfile's guess for an .au/.snd file without a header
            raise AudioDecodeError(path, "no recognisable audio header (libsndfile could only "
                                   "read it as headerless raw data): corrupt or not audio")
        native_sr = f.samplerate
        check_header(path, native_sr, f.channels)
        start = int(offset * native_sr)
        if start >= f.frames > 0:
            raise AudioDecodeError(
                path, f"offset {offset} s is beyond the end of the file "
                f"({f.frames / native_sr:.3f} s)")
        if start > 0:
            f.seek(start)
        limit = None if duration is None else int(duration * native_sr)
        data = _read_blocks(f, limit)
        cut = False
        if limit is not None and data.shape[0] == limit:
            try:  # one more frame says whether the file goes on
                cut = f.read(frames=1, dtype="float32").shape[0] > 0
            except Exception:  # the data ends here, whatever the header said
                cut = False
        return data, native_sr, cut, f.frames / native_sr


def read_audioread(path: str, offset: float, duration: Optional[float]) -> Read:
    """librosa's fallback decoder (audioread: ffmpeg, GStreamer, CoreAudio)."""
    import audioread
    import librosa

    reader = audioread.audio_open(path)
    try:
        check_header(path, reader.samplerate, reader.channels)
    except AudioDecodeError:
        reader.close()
        raise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns that audioread is deprecated.
        y, native_sr = librosa.load(reader, sr=None, mono=False, offset=offset,  # closes it
                                    duration=None if duration is None else duration + 1.0,
                                    dtype=np.float32)
    y = np.atleast_2d(y).T  # (frames, channels), like soundfile
    cut = False
    if duration is not None:
        limit = int(duration * native_sr)
        cut, y = y.shape[0] > limit, y[:limit]
    return y, native_sr, cut, None


def read(path: str, offset: float, duration: Optional[float]) -> Read:
    """libsndfile, else audioread; AudioDecodeError carrying both reasons when both fail."""
    try:
        return read_soundfile(path, offset, duration)
    except AudioDecodeError:
        raise
    except Exception as sf_error:  # libsndfile: unknown format, corrupt header, ...
        try:
            return read_audioread(path, offset, duration)
        except AudioDecodeError:
            raise
        except Exception as fallback_error:
            raise AudioDecodeError(path, both_failed(sf_error, fallback_error)) from None


def both_failed(sf_error: BaseException, fallback_error: BaseException) -> str:
    return (f"corrupt or unsupported format (libsndfile: {one_line(sf_error)}; "
            f"audioread: {one_line(fallback_error) or type(fallback_error).__name__})")


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
