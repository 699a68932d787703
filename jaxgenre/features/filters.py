"""Constant matrices of the feature transforms: windows, mel filterbanks, DCT bases.

Pure numpy, built in float64 and cached per parameter set, so a jitted transform
bakes them in as compile-time constants once instead of rebuilding them per call.
The formulas are librosa 0.11's (`librosa.filters.mel`, `librosa.mel_frequencies`,
`scipy.fft.dct`), re-derived here so the tests can compare against librosa itself.
"""

from __future__ import annotations

import functools
from typing import Optional, Tuple, Union

import numpy as np

WindowSpec = Union[str, Tuple]
MelNorm = Union[None, str, float]

# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, log above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(frequencies, *, htk: bool = False) -> np.ndarray:
    """Hz → mel, Slaney (default) or HTK formula."""
    f = np.asanyarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    linear = f / _F_SP
    with np.errstate(divide="ignore"):
        logpart = _MIN_LOG_MEL + np.log(np.maximum(f, 1e-300) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, logpart, linear)


def mel_to_hz(mels, *, htk: bool = False) -> np.ndarray:
    """mel → Hz, the inverse of `hz_to_mel`."""
    m = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)),
                    _F_SP * m)


@functools.lru_cache(maxsize=64)
def mel_filterbank(*, sr: int, n_fft: int, n_mels: int = 128, fmin: float = 0.0,
                   fmax: Optional[float] = None, htk: bool = False,
                   norm: MelNorm = "slaney") -> np.ndarray:
    """Triangular mel filters, `(n_mels, 1 + n_fft // 2)` float32, as librosa.filters.mel.

    norm: 'slaney' divides each triangle by its width in Hz (constant energy per
    band); None leaves peaks at 1; a number p normalises each filter to unit p-norm.
    """
    if fmax is None:
        fmax = sr / 2.0
    if not 0 <= fmin < fmax:
        raise ValueError(f"mel filterbank needs 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    if n_mels < 1:
        raise ValueError(f"n_mels must be >= 1, got {n_mels}")
    fft_freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_points = mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk),
                                       n_mels + 2), htk=htk)
    widths = np.diff(mel_points)
    offsets = mel_points[:, None] - fft_freqs[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]
    elif norm is not None:
        if isinstance(norm, str) or norm <= 0:
            raise ValueError(f"mel norm must be 'slaney', None or a positive number, got {norm!r}")
        if np.isinf(norm):
            size = np.max(np.abs(weights), axis=-1, keepdims=True)
        else:
            size = np.sum(np.abs(weights) ** norm, axis=-1, keepdims=True) ** (1.0 / norm)
        tiny = np.finfo(np.float32).tiny
        weights = np.where(size < tiny, weights, weights / np.where(size < tiny, 1.0, size))
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=64)
def stft_window(window: WindowSpec, win_length: int, n_fft: int) -> np.ndarray:
    """The analysis window, zero-padded on both sides to n_fft (librosa's pad_center).

    'hann' (periodic, like scipy.signal.get_window with fftbins=True) is built here;
    other names and (name, parameter) tuples go through scipy.signal.get_window.
    """
    if not 0 < win_length <= n_fft:
        raise ValueError(f"win_length must be in (0, n_fft={n_fft}], got {win_length}")
    if window in ("hann", "hanning"):
        w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
    else:
        import scipy.signal

        w = scipy.signal.get_window(window, win_length, fftbins=True)
    left = (n_fft - win_length) // 2
    w = np.pad(w, (left, n_fft - win_length - left)).astype(np.float32)
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=64)
def dct_matrix(n_out: int, n_in: int, *, dct_type: int = 2,
               norm: Optional[str] = "ortho") -> np.ndarray:
    """Rows 0..n_out-1 of the DCT of the given type over n_in points, float32.

    Matches scipy.fft.dct(x, type=dct_type, norm=norm) along an axis of length n_in:
    `dct_matrix(...) @ x == scipy.fft.dct(x, ...)[:n_out]`.
    """
    if norm not in (None, "ortho"):
        raise ValueError(f"DCT norm must be None or 'ortho', got {norm!r}")
    if not 0 < n_out <= n_in:
        raise ValueError(f"need 0 < n_mfcc <= n_mels, got n_mfcc={n_out}, n_mels={n_in}")
    k = np.arange(n_out)[:, None].astype(np.float64)
    n = np.arange(n_in)[None, :].astype(np.float64)
    if dct_type == 2:
        basis = 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))
        if norm == "ortho":
            basis *= np.sqrt(1.0 / (2 * n_in))
            basis[0] /= np.sqrt(2.0)
    elif dct_type == 3:
        basis = 2.0 * np.cos(np.pi * (2 * k + 1) * n / (2 * n_in))
        basis[:, 0] = 1.0
        if norm == "ortho":
            basis[:, 0] = np.sqrt(1.0 / n_in)
            basis[:, 1:] *= np.sqrt(2.0 / n_in) / 2.0
    elif dct_type == 1:
        if n_in < 2:
            raise ValueError("DCT type 1 needs n_mels >= 2")
        basis = 2.0 * np.cos(np.pi * k * n / (n_in - 1))
        basis[:, 0] = 1.0
        basis[:, -1] = (-1.0) ** k[:, 0]
        if norm == "ortho":
            basis[:, 0] *= np.sqrt(2.0)
            basis[:, -1] *= np.sqrt(2.0)
            basis *= np.sqrt(1.0 / (2 * (n_in - 1)))
            basis[0] /= np.sqrt(2.0)
            if n_out == n_in:
                basis[-1] /= np.sqrt(2.0)
    else:
        raise ValueError(f"dct_type must be 1, 2 or 3, got {dct_type}")
    basis = basis.astype(np.float32)
    basis.setflags(write=False)
    return basis
