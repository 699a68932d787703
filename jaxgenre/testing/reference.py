"""librosa, called the way a user calls it: the reference jaxgenre's features must equal.

Used by the start-up job and the speed benchmark to show parity and speed side by
side. (The tests call librosa directly, so they depend on nothing here.)
"""

from __future__ import annotations

import numpy as np


def librosa_feature(y: np.ndarray, *, kind: str, sr: int = 22050, n_fft: int = 2048,
                    hop_length: int = 512, n_mels: int = 128, n_mfcc: int = 20,
                    fmin: float = 0.0, fmax=None, top_db=80.0, ref=1.0,
                    center: bool = True, **unused) -> np.ndarray:
    """One clip `(samples,)` → librosa's feature for `kind` ('spec', 'mel', 'mfcc')."""
    import librosa

    ref_value = np.max if ref == "max" else ref
    if kind == "spec":
        power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, center=center)) ** 2
        return librosa.power_to_db(power, ref=ref_value, top_db=top_db)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length,
                                         n_mels=n_mels, fmin=fmin, fmax=fmax, center=center)
    mel_db = librosa.power_to_db(mel, ref=ref_value, top_db=top_db)
    if kind == "mel":
        return mel_db
    if kind == "mfcc":
        return librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc)
    raise ValueError(f"librosa has no reference for feature kind {kind!r}")
