"""Decoding audio files into float32 numpy arrays, the way librosa.load does, reading
no more of a file than is used.

Everything downstream (data sources, predict) reads audio through this module, so this
is the one place where a bad file becomes a clear `AudioDecodeError` naming the file and
the reason, instead of a traceback from inside libsndfile or audioread.

Decoders (`audio_read`): soundfile (libsndfile) first. It reads wav (8/16/24/32-bit int and float),
flac, ogg/vorbis, opus, mp3 and Sun/NeXT `.au` (GTZAN's original format). Anything
libsndfile does not recognise is handed to librosa's audioread fallback (ffmpeg or
the platform codecs, when installed). Resampling uses soxr at librosa's default
quality ('soxr_hq'), and stereo is mixed down by averaging channels, so
`load_audio(path, sr=22050, offset=o, duration=d)` equals
`librosa.load(path, sr=22050, offset=o, duration=d)`.

Limits (a 7-hour WAV, a header declaring 36 days, 8 channels at 384 kHz): `duration`
bounds what is decoded, and no length a header declares ever sizes a buffer. Samples are
mixed down and resampled block by block as they are read (`audio_blocks`, exact to the
bit), so memory follows the output: about twice `duration` x `sr` x 4 bytes (x channels
for `mono=False`), whatever the file's rate and channel count (8 channels at 384 kHz: 46
MB for predict's 600 s, not 15 GB). At most `MAX_CHANNELS` channels. Only regular files
are opened: a FIFO (which would block), a device, a socket, a dangling or looping
symlink, a file that cannot be opened are AudioDecodeErrors, decided by one stat.

The callers say how much they use: `load_clip` (a data set's clip length),
`load_capped` (predict's documented maximum, and whether it cut), `check_clip` (a data
set's validation); `info` reads the header alone where the header answers.
"""

from __future__ import annotations

import math
import os
import stat
from typing import NamedTuple, Optional, Tuple

import numpy as np

from jaxgenre.audio import read as audio_read
from jaxgenre.audio.read import (MAX_CHANNELS, MAX_SR, MIN_SR, AudioDecodeError,  # noqa: F401
                                 AudioInfo)

DEFAULT_SR = 22050
# Audio read past the end of a clip so that the resampler's filter sees what follows the
# cut: with it, `load_clip` equals decoding the whole file and cropping (measured: 0, and
# 3.3e-7 from a 1 kHz source, for 1 kHz to 768 kHz; without it the last ~30 ms differ by up
# to 0.07).
READ_MARGIN_S = 0.25


class Decoded(NamedTuple):
    """`load_capped`'s result: the samples, and whether the file went on past the cap."""
    samples: np.ndarray
    cut: bool
    file_seconds: Optional[float]  # the header's length (AudioInfo.seconds); None: unknown


# What `_check_path` calls a path that is not a regular file.
_KINDS = ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


def _check_path(path: str) -> None:
    """Only a regular, non-empty file that can be opened goes to a decoder, decided by one
    stat (following links) before anything reads it: opening a FIFO would block, and a
    device never ends. A plain missing path is FileNotFoundError; everything else
    (a dangling or looping symlink, EACCES, a FIFO, ...) is an AudioDecodeError."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise AudioDecodeError(path, f"is a symbolic link to '{_link_target(path)}', "
                                   f"which does not exist") from None
        raise FileNotFoundError(f"audio file '{path}' does not exist") from None
    except OSError as e:  # ELOOP, EACCES on a folder on the way, ENAMETOOLONG, ...
        raise AudioDecodeError(path, f"cannot be opened: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioDecodeError(path, "is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "special file")
        raise AudioDecodeError(path, f"is a {kind}, not a regular file: save the audio to "
                               f"a file and pass that")
    if st.st_size == 0:
        raise AudioDecodeError(path, "the file is empty (0 bytes)")
    try:  # non-blocking, in case it became a FIFO since the stat
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as e:  # EACCES, removed in between, ...
        raise AudioDecodeError(path, f"cannot be opened: {e.strerror or e}") from None


def _link_target(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:  # removed or replaced since
        return "?"


def info(path: os.PathLike | str) -> AudioInfo:
    """The header's sample rate, channels and length, read without decoding audio.

    Raises FileNotFoundError for a missing path and AudioDecodeError for a path that is
    not a readable regular file, a file no decoder recognises or whose header is
    impossible (sample rate, channels)."""
    path = os.fspath(path)
    _check_path(path)
    return audio_read.read_header(path)


def _decode(path: str, sr: Optional[int], mono: bool, offset: float,
            duration: Optional[float]) -> Decoded:
    """load_audio's body, also saying whether `duration` cut the file short."""
    _check_path(path)
    if not (math.isfinite(offset) and offset >= 0) or (
            duration is not None and not (math.isfinite(duration) and duration > 0)):
        raise ValueError(f"offset must be >= 0 and duration > 0, got offset={offset}, "
                         f"duration={duration} (for '{path}')")
    if sr is not None and sr <= 0:
        raise ValueError(f"sr must be a positive sample rate or None, got {sr}")
    # Mixed down and resampled block by block as it is decoded (`audio_blocks`).
    got = audio_read.read(path, offset, duration, mono, sr)
    if got.frames == 0:
        raise AudioDecodeError(path, "the file decodes to zero samples")
    if got.non_finite:
        raise AudioDecodeError(path, f"{got.non_finite} samples are NaN or infinite")
    if got.samples.shape[0] == 0:
        raise AudioDecodeError(path, f"its {got.frames} samples at {got.native_sr} Hz "
                               f"are less than one sample at {sr} Hz")
    y = got.samples if mono else got.samples.T  # (channels, frames), as librosa
    return Decoded(np.ascontiguousarray(y, dtype=np.float32), got.cut, got.file_seconds)


def load_audio(path: os.PathLike | str, sr: Optional[int] = DEFAULT_SR, mono: bool = True,
               offset: float = 0.0, duration: Optional[float] = None) -> np.ndarray:
    """Reads an audio file as float32 in [-1, 1], resampled to `sr`.

    Args:
      path: the audio file.
      sr: target sample rate; None keeps the file's own rate.
      mono: average the channels into one (librosa's to_mono).
      offset: seconds to skip at the start (`int(offset * file_rate)` frames, as librosa).
      duration: seconds to read (`int(duration * file_rate)` frames, as librosa; None: to
        the end). Only that much is decoded, and memory follows the output (mixed down and
        resampled block by block) whatever the header claims.

    Returns:
      `(samples,)` when mono, else `(channels, samples)`; float32.

    Raises:
      FileNotFoundError: the path does not exist.
      AudioDecodeError: the path is not a regular file that can be opened (a FIFO, a
        device, a dangling or looping symlink, EACCES), or the file is empty, corrupt, in
        an unsupported format, has no samples, holds NaN/inf samples, or its header is
        impossible (sample rate, more than MAX_CHANNELS channels) or declares more than
        its data holds. The message names the file and the reason.
    """
    return _decode(os.fspath(path), sr, mono, offset, duration).samples


def load_capped(path: os.PathLike | str, *, sr: Optional[int] = DEFAULT_SR,
                max_seconds: float, mono: bool = True) -> Decoded:
    """At most the first `max_seconds` of a file (exactly load_audio's
    `duration=max_seconds`), with `cut` saying whether the file went on past them and
    `file_seconds` its header's length: for callers that must say when they cut."""
    if not (math.isfinite(max_seconds) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number of seconds, got "
                         f"{max_seconds} (for '{os.fspath(path)}')")
    return _decode(os.fspath(path), sr, mono, 0.0, max_seconds)


def load_clip(path: os.PathLike | str, seconds: float, *, sr: int = DEFAULT_SR) -> np.ndarray:
    """A data set's clip: exactly `seconds` at `sr`, cropped or zero-padded (fix_length),
    decoding only `seconds + READ_MARGIN_S` of the file. Equal to
    `fix_length(load_audio(path, sr=sr), seconds, sr)` (see READ_MARGIN_S)."""
    return fix_length(load_audio(path, sr=sr, duration=seconds + READ_MARGIN_S), seconds, sr)


def check_clip(path: os.PathLike | str, *, sr: int, min_seconds: float,
               clip_seconds: float) -> Tuple[Optional[str], float]:
    """(why the file cannot be a data set's clip or None, its length in seconds).

    A header that says the file is shorter than `min_seconds` answers without decoding;
    otherwise the part a clip uses (`max(min_seconds, clip_seconds)` plus the margin) must
    decode to finite samples. The length is the header's when decoding stopped at the cap
    (a 7-hour file is accepted as 7 hours, in the time it takes to read 30 s)."""
    path = os.fspath(path)
    try:
        header = info(path)
        if header.frames is not None and header.frames / header.samplerate < min_seconds:
            return _too_short(header.frames / header.samplerate, min_seconds)
        decoded = _decode(path, sr, True, 0.0,
                          max(min_seconds, clip_seconds) + READ_MARGIN_S)
    except AudioDecodeError as e:
        return e.reason, 0.0
    except FileNotFoundError:  # listed by the caller, so it went away since
        return "does not exist (removed while the data was being read?)", 0.0
    seconds = decoded.samples.size / sr
    if seconds < min_seconds:
        return _too_short(seconds, min_seconds)
    if decoded.cut and decoded.file_seconds:
        seconds = max(seconds, decoded.file_seconds)
    return None, seconds


def _too_short(seconds: float, min_seconds: float) -> Tuple[str, float]:
    return f"too short: {seconds:.2f} s < min_seconds={min_seconds:g} s", seconds


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
