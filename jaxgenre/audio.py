"""Decoding audio files into float32 numpy arrays, the way librosa.load does.

Everything downstream (data sources, predict) reads audio through `load_audio`, so
this is the one place where a bad file becomes a clear `AudioDecodeError` naming the
file and the reason, instead of a traceback from inside libsndfile or audioread.

Decoders: soundfile (libsndfile) first. It reads wav (8/16/24/32-bit int and float),
flac, ogg/vorbis, opus, mp3 and Sun/NeXT `.au` (GTZAN's original format). Anything
libsndfile does not recognise is handed to librosa's audioread fallback (ffmpeg or
the platform codecs, when installed). Resampling uses soxr at librosa's default
quality ('soxr_hq'), and stereo is mixed down by averaging channels, so
`load_audio(path, sr=22050)` equals `librosa.load(path, sr=22050)`.
"""

from __future__ import annotations

import os
import warnings
from typing import Optional

import numpy as np

DEFAULT_SR = 22050
# Sample rates a file may declare: telephone-grade 1 kHz-ish sources up to DXD-class
# 768 kHz. Anything else is a damaged header (a flipped bit made one 537 MHz), and
# resampling from it would give nothing, or gigabytes.
MIN_SR, MAX_SR = 1000, 768000


class AudioDecodeError(ValueError):
    """A file that exists but cannot be turned into usable audio samples."""

    def __init__(self, path: os.PathLike | str, reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"cannot decode audio file '{self.path}': {reason}")


def _read_soundfile(path: str, offset: float, duration: Optional[float]):
    """Returns (samples (frames, channels) float32, native sr) or raises RuntimeError."""
    import soundfile as sf

    with sf.SoundFile(path) as f:
        if f.format == "RAW":  # libsndfile's guess for an .au/.snd file without a header
            raise AudioDecodeError(path, "no recognisable audio header (libsndfile could only "
                                   "read it as headerless raw data): corrupt or not audio")
        native_sr = f.samplerate
        start = int(round(offset * native_sr))
        if start >= f.frames > 0:
            raise AudioDecodeError(
                path, f"offset {offset} s is beyond the end of the file "
                f"({f.frames / native_sr:.3f} s)")
        if start > 0:
            f.seek(start)
        frames = -1 if duration is None else int(round(duration * native_sr))
        data = f.read(frames=frames, dtype="float32", always_2d=True)
    return data, native_sr


def _read_audioread(path: str, offset: float, duration: Optional[float]):
    """librosa's fallback decoder (audioread: ffmpeg, GStreamer, CoreAudio)."""
    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns that audioread is deprecated.
        y, native_sr = librosa.load(path, sr=None, mono=False, offset=offset,
                                    duration=duration, dtype=np.float32)
    y = np.atleast_2d(y).T  # (frames, channels), like soundfile
    return y, native_sr


def load_audio(path: os.PathLike | str, sr: Optional[int] = DEFAULT_SR, mono: bool = True,
               offset: float = 0.0, duration: Optional[float] = None) -> np.ndarray:
    """Reads an audio file as float32 in [-1, 1], resampled to `sr`.

    Args:
      path: the audio file.
      sr: target sample rate; None keeps the file's own rate.
      mono: average the channels into one (librosa's to_mono).
      offset: seconds to skip at the start.
      duration: seconds to read (None: to the end).

    Returns:
      `(samples,)` when mono, else `(channels, samples)`; float32.

    Raises:
      FileNotFoundError: the path does not exist.
      AudioDecodeError: the file is empty, corrupt, in an unsupported format, has no
        samples, or holds NaN/inf samples. The message names the file and the reason.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"audio file '{path}' does not exist")
    if os.path.isdir(path):
        raise AudioDecodeError(path, "is a directory, not an audio file")
    if offset < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"offset must be >= 0 and duration > 0, got offset={offset}, "
                         f"duration={duration} (for '{path}')")
    if sr is not None and sr <= 0:
        raise ValueError(f"sr must be a positive sample rate or None, got {sr}")
    if os.path.getsize(path) == 0:
        raise AudioDecodeError(path, "the file is empty (0 bytes)")

    try:
        data, native_sr = _read_soundfile(path, offset, duration)
    except AudioDecodeError:
        raise
    except Exception as sf_error:  # libsndfile: unknown format, corrupt header, ...
        try:
            data, native_sr = _read_audioread(path, offset, duration)
        except Exception as fallback_error:
            raise AudioDecodeError(
                path, f"corrupt or unsupported format (libsndfile: {_one_line(sf_error)}; "
                f"audioread: {_one_line(fallback_error) or type(fallback_error).__name__})"
            ) from None

    if not MIN_SR <= native_sr <= MAX_SR:  # a damaged header, most likely
        raise AudioDecodeError(path, f"its header gives a sample rate of {native_sr} Hz, "
                               f"outside any audio format's {MIN_SR}-{MAX_SR} Hz: damaged?")
    if data.shape[0] == 0:
        raise AudioDecodeError(path, "the file decodes to zero samples")
    if not np.all(np.isfinite(data)):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise AudioDecodeError(path, f"{bad} samples are NaN or infinite")

    y = data.T  # (channels, frames)
    if mono:
        y = y.mean(axis=0, dtype=np.float32) if y.shape[0] > 1 else y[0]
    if sr is not None and native_sr != sr:
        y = resample(y, orig_sr=native_sr, target_sr=sr)
        if y.shape[-1] == 0:
            raise AudioDecodeError(path, f"its {data.shape[0]} samples at {native_sr} Hz "
                                   f"are less than one sample at {sr} Hz")
    return np.ascontiguousarray(y, dtype=np.float32)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resamples along the last axis with soxr 'HQ' (librosa's default res_type)."""
    import soxr

    if orig_sr == target_sr:
        return y
    if y.ndim == 1:
        return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32)
    # soxr wants (frames, channels).
    return soxr.resample(y.T, orig_sr, target_sr, quality="HQ").T.astype(np.float32)


def fix_length(y, seconds: float, sr: int = DEFAULT_SR):
    """Pads with zeros at the end, or crops, the last axis to exactly `seconds * sr` samples.

    GTZAN clips run from about 29.9 s to 30.6 s; a fixed length gives every clip the
    same feature image size. Works on numpy and JAX arrays and keeps the array type.
    """
    size = int(round(seconds * sr))
    if size <= 0:
        raise ValueError(f"fix_length needs a positive length, got {seconds} s at {sr} Hz")
    n = y.shape[-1]
    if n >= size:
        return y[..., :size]
    widths = [(0, 0)] * (y.ndim - 1) + [(0, size - n)]
    if isinstance(y, np.ndarray):
        return np.pad(y, widths)
    import jax.numpy as jnp

    return jnp.pad(y, widths)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
