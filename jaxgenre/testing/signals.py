"""Built-in deterministic test signals: the inputs of the feature parity checks and of
the start-up job, so both run anywhere with no audio files."""

from __future__ import annotations

from typing import Dict

import numpy as np


def tone(freq: float, *, sr: int, n: int, amplitude: float = 0.5) -> np.ndarray:
    """A sine at `freq` Hz. With freq = k * sr / n_fft it lies exactly on FFT bin k."""
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def linear_chirp(*, sr: int, n: int, f0: float = 50.0, f1: float | None = None,
                 amplitude: float = 0.5) -> np.ndarray:
    """A sine sweeping linearly from f0 to f1 (default 0.45 * sr) over the signal."""
    f1 = 0.45 * sr if f1 is None else f1
    t = np.arange(n) / sr
    duration = n / sr
    phase = 2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / duration * t ** 2)
    return (amplitude * np.sin(phase)).astype(np.float32)


def clipped_square(freq: float = 220.0, *, sr: int, n: int) -> np.ndarray:
    """A sine overdriven 4x and hard-clipped at ±0.8: a square wave with rich harmonics."""
    return np.clip(4.0 * np.sin(2 * np.pi * freq * np.arange(n) / sr), -0.8, 0.8).astype(
        np.float32)


def white_noise(*, n: int, seed: int = 0, amplitude: float = 0.1) -> np.ndarray:
    return (amplitude * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def test_signals(*, sr: int = 22050, seconds: float = 3.0, n_fft: int = 2048,
                 seed: int = 0) -> Dict[str, np.ndarray]:
    """The named signals of the parity suite, each `seconds` long at `sr`."""
    n = int(round(seconds * sr))
    bin_hz = sr / n_fft
    return {
        "white_noise": white_noise(n=n, seed=seed),
        "linear_chirp": linear_chirp(sr=sr, n=n),
        "tone_on_bin": tone(93 * bin_hz, sr=sr, n=n),
        "tone_between_bins": tone(93.5 * bin_hz, sr=sr, n=n),
        "silence": np.zeros(n, np.float32),
        "clipped_square": clipped_square(sr=sr, n=n),
    }


test_signals.__test__ = False  # not a pytest test, despite the name
