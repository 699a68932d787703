"""What `audio.load_audio` does to decoded samples, done block by block as the decoder
reads them, so that memory follows the output and not the file: a 2 MB FLAC of 8
channels at 384 kHz is 14.7 GB of float32 over predict's 600 s, 53 MB once mixed down
and resampled to 22.05 kHz.

Every step is exact blockwise, so the result equals librosa.load's to the bit:
- non-finite samples are counted (each block's count adds up to the whole's);
- mono: channels averaged (librosa's to_mono, before it resamples); a frame's mean needs
  that frame alone, and a block has the whole array's layout, so numpy sums the same way;
- resampling: a soxr stream at librosa's quality ('soxr_hq'), each block fed as it comes
  and flushed at the end. Its output equals one-shot `soxr.resample` of the whole to the
  bit (measured: 763 cases, 1-3 channels, 1 kHz-768 kHz, 1 to 1.3 M frames, blocks of
  999 to 262144 frames; `tests/test_audio_limits.py` holds it to librosa.load exactly).

`audio.read` feeds it; nothing else imports this module.
"""

from __future__ import annotations

from typing import List, Optional

import numpy as np


class Blocks:
    """Accumulates decoded blocks `(frames, channels)` float32 as `load_audio` returns
    them: `(frames,)` when mono, else `(frames, channels)`, at `sr` (None: the native
    rate). After a non-finite sample it only counts: `samples()` is then empty."""

    def __init__(self, channels: int, native_sr: int, mono: bool, sr: Optional[int]):
        self.channels, self.mono = channels, mono
        self.frames = 0  # decoded, at the native rate
        self.non_finite = 0  # NaN/inf samples among them (all channels)
        self._parts: List[np.ndarray] = []
        self._stream = None
        if sr is not None and sr != native_sr:
            import soxr

            self._stream = soxr.ResampleStream(native_sr, sr, 1 if mono else channels,
                                               dtype="float32", quality="HQ")

    def add(self, block: np.ndarray) -> None:
        """One decoded block, (frames, channels) float32."""
        if not block.shape[0]:
            return
        self.frames += block.shape[0]
        finite = np.count_nonzero(np.isfinite(block))
        self.non_finite += block.size - finite
        if self.non_finite:
            return  # the file is refused: decoding goes on only to count
        if self.mono:
            y = block.T.mean(axis=0, dtype=np.float32) if self.channels > 1 else block[:, 0]
        else:
            y = block
        if self._stream is not None:
            y = self._stream.resample_chunk(y, last=False)
        if y.shape[0]:
            # A copy: a view (one channel of a block, a short last read) would keep the
            # whole block alive.
            self._parts.append(np.array(y, dtype=np.float32, copy=True) if y.base is not None
                               or y.dtype != np.float32 else y)

    def samples(self) -> np.ndarray:
        """Everything added, the resampler flushed; call once, at the end."""
        if self._stream is not None and not self.non_finite and self.frames:
            empty = np.zeros((0,) if self.mono else (0, self.channels), np.float32)
            tail = self._stream.resample_chunk(empty, last=True)
            if tail.shape[0]:
                self._parts.append(np.asarray(tail, np.float32))
        self._stream = None
        if not self._parts:
            return np.zeros((0,) if self.mono else (0, self.channels), np.float32)
        return np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
