"""The decoders behind `jaxgenre.audio`: libsndfile (soundfile) first, librosa's audioread
fallback second, each reading no more than asked and never trusting a header's length.

- A header is checked (sample rate, channels) before a single sample is read.
- libsndfile is read block by block (`BLOCK_SAMPLES` samples a read), so a header that
  declares more than the data holds (a FLAC claiming 36 days) never sizes an allocation:
  memory follows the audio decoded. Each block goes through `blocks.Blocks` as it
  is read: checked for NaN/inf, mixed down (mono) and resampled (a soxr stream), exactly
  as `load_audio` treats the whole, so memory follows the output (twice it while the
  parts are joined, plus one block), whatever the file's rate and channel count. A stream
  that ends before its header says raises, naming both lengths.
- At most `MAX_CHANNELS` channels: more is refused from the header.
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
from typing import NamedTuple, Optional

import numpy as np

from jaxgenre import errors
from jaxgenre.audio.blocks import Blocks

# Sample rates a file may declare: telephone-grade 1 kHz-ish sources up to DXD-class
# 768 kHz. Anything else is a damaged header (a flipped bit made one 537 MHz), and
# resampling from it would give nothing, or gigabytes.
MIN_SR, MAX_SR = 1000, 768000
# Channels a file may declare: 64 is 7th-order ambisonics, above every delivery format
# (FLAC stops at 8, AAC at 48); more is a multitrack master or a damaged header. Decoding
# work grows with it (every channel is decoded, then mixed), and the audioread fallback
# holds every channel before mixing, so it is bounded here, from the header.
MAX_CHANNELS = 64
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


class Read(NamedTuple):
    """A decoder's result: what `Blocks` made of the frames it decoded."""
    samples: np.ndarray  # (frames,) when mono, else (frames, channels); float32 at `sr`
    native_sr: int
    cut: bool  # `duration` stopped the read and the file went on
    file_seconds: Optional[float]  # the header's length; None: unknown
    frames: int  # decoded, at the native rate
    non_finite: int  # NaN/inf samples among them (then `samples` is empty)


def check_header(path: str, samplerate: float, channels: int) -> None:
    """Rejects what no decoder should act on, before a single sample is read."""
    if not MIN_SR <= samplerate <= MAX_SR:  # a damaged header, most likely
        raise AudioDecodeError(path, f"its header gives a sample rate of {samplerate} Hz, "
                               f"outside any audio format's {MIN_SR}-{MAX_SR} Hz: damaged?")
    if channels < 1:
        raise AudioDecodeError(path, f"its header gives {channels} channels: damaged?")
    if channels > MAX_CHANNELS:
        raise AudioDecodeError(path, f"its header gives {channels} channels; this reads at "
                               f"most {MAX_CHANNELS}: mix it down first (or the header is "
                               f"damaged)")


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


def _read_blocks(f, limit: Optional[int], blocks: Blocks) -> None:
    """Up to `limit` frames (None: to the end) from an open SoundFile into `blocks`, one
    block (at most BLOCK_SAMPLES samples) a read."""
    block = max(1, BLOCK_SAMPLES // f.channels)
    got = 0
    while limit is None or got < limit:
        want = block if limit is None else min(block, limit - got)
        try:
            part = f.read(frames=want, dtype="float32", always_2d=True)
        except Exception as e:  # libsndfile ran off the real data (a truncated stream)
            raise RuntimeError(
                f"its data ends after {got / f.samplerate:.2f} s though its header declares "
                f"{f.frames / f.samplerate:.6g} s: truncated or damaged "
                f"({one_line(e)})") from None
        blocks.add(part)
        got += part.shape[0]
        if part.shape[0] < want:
            break


def read_soundfile(path: str, offset: float, duration: Optional[float], mono: bool = False,
                   sr: Optional[int] = None) -> Read:
    """libsndfile, block by block; raises RuntimeError (libsndfile's, or a truncated
    stream) or AudioDecodeError (a header nothing should decode, an offset past the end)."""
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
        blocks = Blocks(f.channels, native_sr, mono, sr)
        _read_blocks(f, limit, blocks)
        cut = False
        if limit is not None and blocks.frames == limit:
            try:  # one more frame says whether the file goes on
                cut = f.read(frames=1, dtype="float32").shape[0] > 0
            except Exception:  # the data ends here, whatever the header said
                cut = False
        return Read(blocks.samples(), native_sr, cut, f.frames / native_sr, blocks.frames,
                    blocks.non_finite)


def read_audioread(path: str, offset: float, duration: Optional[float], mono: bool = False,
                   sr: Optional[int] = None) -> Read:
    """librosa's fallback decoder (audioread: ffmpeg, GStreamer, CoreAudio). librosa holds
    every channel of what it reads (at most MAX_CHANNELS) before `Blocks` sees it."""
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
    blocks = Blocks(y.shape[1], native_sr, mono, sr)
    blocks.add(np.ascontiguousarray(y))
    del y
    return Read(blocks.samples(), native_sr, cut, None, blocks.frames, blocks.non_finite)


def read(path: str, offset: float, duration: Optional[float], mono: bool = False,
         sr: Optional[int] = None) -> Read:
    """libsndfile, else audioread: `duration` seconds from `offset`, mixed down (mono)
    and resampled to `sr` (None: the native rate) as they are decoded. AudioDecodeError
    carrying both reasons when both fail."""
    try:
        return read_soundfile(path, offset, duration, mono, sr)
    except AudioDecodeError:
        raise
    except Exception as sf_error:  # libsndfile: unknown format, corrupt header, ...
        try:
            return read_audioread(path, offset, duration, mono, sr)
        except AudioDecodeError:
            raise
        except Exception as fallback_error:
            raise AudioDecodeError(path, both_failed(sf_error, fallback_error)) from None


def both_failed(sf_error: BaseException, fallback_error: BaseException) -> str:
    return (f"corrupt or unsupported format (libsndfile: {one_line(sf_error)}; "
            f"audioread: {one_line(fallback_error) or type(fallback_error).__name__})")


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
