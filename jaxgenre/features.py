"""The study's four input features as pure, jit-compiled, batched JAX transforms.

Each function takes float audio of shape `(..., samples)` and returns what librosa
returns for one clip, for every clip of the batch: `(..., n_freq, n_frames)` float32.

    spectrogram_db     = power_to_db(|stft(y)|**2)
    melspectrogram_db  = power_to_db(melspectrogram(y))
    mfcc               = dct(power_to_db(melspectrogram(y)))[:n_mfcc]
    waveform           = y / max|y|   (peak normalisation, the study's waveform plots)

Parameter names and defaults are librosa 0.11's. `ref` is a float or 'max'; 'max'
means each example's own maximum (librosa's `ref=np.max` on one clip), and `top_db`
also clips each example against its own peak, never against the batch.

How it is fast (BUILD_NOTES.md, "Feature speed", has the measurements):
  * one clip at a time inside one jit (`lax.map`), so a clip's frames stay in cache
    instead of streaming the whole batch's 4x-overlapping frames through memory;
  * framing without a gather when hop_length divides n_fft: the padded signal is
    reshaped into hop-sized rows and n_fft/hop_length shifted row slices are joined;
  * the mel product skips the filterbank's zeros: mel bands are cut into groups of
    16 and each group multiplies only the FFT bins its triangles cover (~8x fewer FLOPs);
  * dB, ref and top_db fuse into one pass over the (small) mel image;
  * XLA's CPU FFT runs on one thread, so a concrete batch on the CPU is split into
    one equal chunk per core and the chunks run concurrently.
Static parameters are compile-time constants: filterbanks, windows and the DCT basis
are built once per parameter set (see `filters`), not per call.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import inspect
import math
import os
from typing import Optional, Tuple, Union

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxgenre import filters

Ref = Union[float, str]
_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")
_MEL_GROUP = 16  # mel bands per block of the banded mel product


@dataclasses.dataclass(frozen=True)
class _Params:
    """Every static parameter of a transform; hashable, so it keys jit's cache."""
    n_fft: int
    hop_length: int
    win_length: int
    window: filters.WindowSpec
    center: bool
    pad_mode: str
    ref: Ref
    amin: float
    top_db: Optional[float]
    mel: Optional[Tuple] = None  # (sr, n_mels, fmin, fmax, htk, norm)
    dct: Optional[Tuple] = None  # (n_mfcc, dct_type, norm, lifter)

    def n_frames(self, n_samples: int) -> int:
        padded = n_samples + (2 * (self.n_fft // 2) if self.center else 0)
        return 1 + (padded - self.n_fft) // self.hop_length

    def n_out(self) -> int:
        if self.dct is not None:
            return self.dct[0]
        if self.mel is not None:
            return self.mel[1]
        return 1 + self.n_fft // 2


# --------------------------------------------------------------------------- pieces


def _frames(y: jax.Array, p: _Params) -> jax.Array:
    """Windowed frames `(n_frames, n_fft)` of one padded clip."""
    n_frames = 1 + (y.shape[0] - p.n_fft) // p.hop_length
    window = jnp.asarray(filters.stft_window(p.window, p.win_length, p.n_fft))
    if p.n_fft % p.hop_length == 0:
        # Gather-free: rows of hop_length samples, n_fft / hop_length shifted slices.
        r = p.n_fft // p.hop_length
        rows = y[:(n_frames + r - 1) * p.hop_length].reshape(n_frames + r - 1, p.hop_length)
        shifted = jnp.stack([rows[i:i + n_frames] for i in range(r)], axis=1)
        return shifted.reshape(n_frames, p.n_fft) * window
    index = (np.arange(n_frames)[:, None] * p.hop_length + np.arange(p.n_fft)[None, :])
    return y[index] * window


@functools.lru_cache(maxsize=64)
def _mel_blocks(mel: Tuple, n_fft: int):
    """Cuts the filterbank into (first_bin, last_bin + 1, weights^T) blocks of bands."""
    sr, n_mels, fmin, fmax, htk, norm = mel
    bank = filters.mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                  htk=htk, norm=norm)
    blocks = []
    for start in range(0, n_mels, _MEL_GROUP):
        rows = bank[start:start + _MEL_GROUP]
        support = np.flatnonzero(rows.any(axis=0))
        lo, hi = (support[0], support[-1] + 1) if support.size else (0, 1)
        blocks.append((int(lo), int(hi), np.ascontiguousarray(rows[:, lo:hi].T)))
    return tuple(blocks)


def _mel_power(power: jax.Array, p: _Params) -> jax.Array:
    """(n_frames, n_bins) power → (n_frames, n_mels), multiplying only non-zero bands."""
    blocks = _mel_blocks(p.mel, p.n_fft)
    return jnp.concatenate(
        [jnp.dot(power[:, lo:hi], w, precision=jax.lax.Precision.HIGHEST)
         for lo, hi, w in blocks], axis=-1)


def _power_to_db(s: jax.Array, p: _Params) -> jax.Array:
    """librosa.power_to_db on one example; ref='max' is this example's own maximum."""
    db = 10.0 * jnp.log10(jnp.maximum(p.amin, s))
    ref = jnp.max(s) if p.ref == "max" else p.ref
    db = db - 10.0 * jnp.log10(jnp.maximum(p.amin, ref))
    if p.top_db is not None:
        db = jnp.maximum(db, jnp.max(db) - p.top_db)
    return db


def _one_clip(y: jax.Array, p: _Params) -> jax.Array:
    """(samples,) → (n_out, n_frames) for one clip."""
    if p.center:
        half = p.n_fft // 2
        y = jnp.pad(y, (half, half), mode=p.pad_mode)
    spectrum = jnp.fft.rfft(_frames(y, p), axis=-1)
    power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)
    if p.mel is not None:
        power = _mel_power(power, p)
    db = _power_to_db(power, p)  # (n_frames, n_bands)
    if p.dct is not None:
        n_mfcc, dct_type, norm, lifter = p.dct
        basis = filters.dct_matrix(n_mfcc, p.mel[1], dct_type=dct_type, norm=norm)
        if lifter > 0:
            lift = 1.0 + (lifter / 2.0) * np.sin(np.pi * np.arange(1, n_mfcc + 1) / lifter)
            basis = (basis * lift[:, None]).astype(np.float32)
        db = jnp.dot(db, basis.T, precision=jax.lax.Precision.HIGHEST)
    return db.T


@functools.partial(jax.jit, static_argnames=("p", "count"))
def _transform(y: jax.Array, start: jax.Array, p: _Params, count: int) -> jax.Array:
    """Clips start .. start+count-1 of a (batch, samples) array → (count, n_out, n_frames).

    One clip at a time, read from `y` in place (indices past the end repeat the last
    clip and are dropped by the caller), so chunks of a batch run without copying it.
    """
    last = y.shape[0] - 1
    out = jax.lax.map(lambda i: _one_clip(y[jnp.minimum(i, last)], p),
                      start + jnp.arange(count))
    chex.assert_shape(out, (count, p.n_out(), p.n_frames(y.shape[1])))
    return out


# ------------------------------------------------------------------ batch dispatch

_POOL: Optional[concurrent.futures.ThreadPoolExecutor] = None


def _cpu_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _run(y: jax.Array, p: _Params) -> jax.Array:
    """Flattens leading axes, runs `_transform`, restores them.

    Under an outer jit (a tracer) this is the plain jitted transform. On concrete
    CPU arrays the batch is padded to a multiple of the core count and split into
    equal chunks that run concurrently: one compiled shape, every core busy.
    """
    lead, n = y.shape[:-1], y.shape[-1]
    flat = y.reshape((-1, n))
    batch = flat.shape[0]
    workers = min(batch, _cpu_workers())
    on_cpu = not isinstance(flat, jax.core.Tracer) and all(
        d.platform == "cpu" for d in flat.devices())
    if workers < 2 or not on_cpu:
        out = _transform(flat, 0, p, batch)
    else:
        global _POOL
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(_cpu_workers(), "jaxgenre-features")
        per = math.ceil(batch / workers)
        parts = list(_POOL.map(
            lambda i: _transform(flat, i * per, p, per).block_until_ready(), range(workers)))
        out = jnp.concatenate(parts, axis=0)[:batch]
    return out.reshape(lead + out.shape[1:])


# ------------------------------------------------------------------- validation


def _as_audio(y, name: str) -> jax.Array:
    """Checks rank and dtype at the boundary; returns float32."""
    if not hasattr(y, "dtype") or not hasattr(y, "shape"):
        y = np.asarray(y)
    if y.ndim < 1:
        raise ValueError(f"{name} expects audio of shape (..., samples); got a scalar")
    if not jnp.issubdtype(y.dtype, jnp.floating):
        hint = (" Integer PCM: divide by 32768 (int16) or use jaxgenre.audio.load_audio."
                if jnp.issubdtype(y.dtype, jnp.integer) else "")
        raise ValueError(f"{name} expects real floating-point audio, got dtype {y.dtype}.{hint}")
    if y.shape[-1] == 0 or any(d == 0 for d in y.shape):
        raise ValueError(f"{name} got an empty array of shape {tuple(y.shape)}")
    return jnp.asarray(y, dtype=jnp.float32)


def _stft_params(name: str, n_samples: int, *, n_fft, hop_length, win_length, window, center,
                 pad_mode, ref, amin, top_db, mel=None, dct=None) -> _Params:
    if n_fft < 2 or hop_length < 1:
        raise ValueError(f"{name}: need n_fft >= 2 and hop_length >= 1, "
                         f"got n_fft={n_fft}, hop_length={hop_length}")
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"{name}: pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    if not (ref == "max" or isinstance(ref, (int, float)) and ref > 0):
        raise ValueError(f"{name}: ref must be a positive number or 'max', got {ref!r}")
    if amin <= 0:
        raise ValueError(f"{name}: amin must be strictly positive, got {amin}")
    if top_db is not None and top_db < 0:
        raise ValueError(f"{name}: top_db must be non-negative or None, got {top_db}")
    if not center and n_samples < n_fft:
        raise ValueError(f"{name}: with center=False the signal ({n_samples} samples) must be "
                         f"at least n_fft={n_fft} long; pad it or use center=True")
    if center and pad_mode in ("reflect", "symmetric") and n_samples <= n_fft // 2:
        raise ValueError(f"{name}: pad_mode={pad_mode!r} needs more than n_fft // 2 = "
                         f"{n_fft // 2} samples, got {n_samples}; use pad_mode='constant'")
    if isinstance(window, (list, np.ndarray)):
        raise ValueError(f"{name}: pass the window as a name or (name, param) tuple, "
                         "e.g. 'hann' or ('kaiser', 8.0)")
    return _Params(n_fft=int(n_fft), hop_length=int(hop_length),
                   win_length=int(win_length or n_fft), window=window, center=bool(center),
                   pad_mode=pad_mode, ref=ref if ref == "max" else float(ref),
                   amin=float(amin), top_db=None if top_db is None else float(top_db),
                   mel=mel, dct=dct)


# ------------------------------------------------------------------- public API


def spectrogram_db(y, *, n_fft: int = 2048, hop_length: int = 512,
                   win_length: Optional[int] = None, window: filters.WindowSpec = "hann",
                   center: bool = True, pad_mode: str = "constant", ref: Ref = 1.0,
                   amin: float = 1e-10, top_db: Optional[float] = 80.0) -> jax.Array:
    """Power spectrogram in dB: `(..., 1 + n_fft // 2, n_frames)`.

    Equals `librosa.power_to_db(np.abs(librosa.stft(y, ...))**2, ref=, amin=, top_db=)`.
    """
    y = _as_audio(y, "spectrogram_db")
    p = _stft_params("spectrogram_db", y.shape[-1], n_fft=n_fft, hop_length=hop_length,
                     win_length=win_length, window=window, center=center,
                     pad_mode=pad_mode, ref=ref, amin=amin, top_db=top_db)
    return _run(y, p)


def melspectrogram_db(y, *, sr: int = 22050, n_fft: int = 2048, hop_length: int = 512,
                      win_length: Optional[int] = None, window: filters.WindowSpec = "hann",
                      n_mels: int = 128, fmin: float = 0.0, fmax: Optional[float] = None,
                      htk: bool = False, norm: filters.MelNorm = "slaney", center: bool = True,
                      pad_mode: str = "constant", ref: Ref = 1.0, amin: float = 1e-10,
                      top_db: Optional[float] = 80.0) -> jax.Array:
    """Mel power spectrogram in dB: `(..., n_mels, n_frames)`.

    Equals `librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, ...), ...)`.
    """
    y = _as_audio(y, "melspectrogram_db")
    p = _mel_params("melspectrogram_db", y.shape[-1], sr=sr, n_fft=n_fft,
                    hop_length=hop_length, win_length=win_length, window=window,
                    n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, center=center,
                    pad_mode=pad_mode, ref=ref, amin=amin, top_db=top_db)
    return _run(y, p)


def mfcc(y, *, sr: int = 22050, n_mfcc: int = 20, dct_type: int = 2,
         norm: Optional[str] = "ortho", lifter: float = 0, **mel_kwargs) -> jax.Array:
    """Mel-frequency cepstral coefficients: `(..., n_mfcc, n_frames)`.

    Equals `librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, dct_type=, norm=, lifter=,
    **mel_kwargs)`: the DCT over bands of `melspectrogram_db(y, sr=sr, **mel_kwargs)`
    (so librosa's ref=1.0, top_db=80 apply). As in librosa, `norm` is the DCT's and the
    mel filterbank's own norm is passed as `mel_norm`.
    """
    y = _as_audio(y, "mfcc")
    if lifter < 0:
        raise ValueError(f"mfcc: lifter must be >= 0, got {lifter}")
    mel_kwargs = dict(mel_kwargs)
    if "mel_norm" in mel_kwargs:
        mel_kwargs["norm"] = mel_kwargs.pop("mel_norm")
    p = _mel_params("mfcc", y.shape[-1], sr=sr, **mel_kwargs)
    filters.dct_matrix(n_mfcc, p.mel[1], dct_type=dct_type, norm=norm)  # validates
    return _run(y, dataclasses.replace(p, dct=(int(n_mfcc), int(dct_type), norm, float(lifter))))


def _mel_params(name: str, n_samples: int, *, sr: int = 22050, n_fft: int = 2048,
                hop_length: int = 512, win_length: Optional[int] = None,
                window: filters.WindowSpec = "hann", n_mels: int = 128, fmin: float = 0.0,
                fmax: Optional[float] = None, htk: bool = False,
                norm: filters.MelNorm = "slaney", center: bool = True,
                pad_mode: str = "constant", ref: Ref = 1.0, amin: float = 1e-10,
                top_db: Optional[float] = 80.0) -> _Params:
    fmax = sr / 2.0 if fmax is None else float(fmax)
    try:  # validates the filterbank parameters and caches the bank for the trace
        filters.mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=float(fmin),
                               fmax=fmax, htk=htk, norm=norm)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    return _stft_params(name, n_samples, n_fft=n_fft, hop_length=hop_length,
                        win_length=win_length, window=window, center=center,
                        pad_mode=pad_mode, ref=ref, amin=amin, top_db=top_db,
                        mel=(int(sr), int(n_mels), float(fmin), fmax, bool(htk), norm))


def waveform(y, *, norm: str = "peak") -> jax.Array:
    """The study's waveform input: each example scaled to peak |y| = 1 ('peak') or to
    unit RMS ('rms'). Silent examples stay all-zero. Shape is unchanged."""
    y = _as_audio(y, "waveform")
    if norm not in ("peak", "rms"):
        raise ValueError(f"waveform: norm must be 'peak' or 'rms', got {norm!r}")
    return _normalise(y, norm)


@functools.partial(jax.jit, static_argnames="norm")
def _normalise(y: jax.Array, norm: str) -> jax.Array:
    if norm == "peak":
        scale = jnp.max(jnp.abs(y), axis=-1, keepdims=True)
    else:
        scale = jnp.sqrt(jnp.mean(jnp.square(y), axis=-1, keepdims=True))
    return jnp.where(scale > 0, y / jnp.where(scale > 0, scale, 1.0), 0.0)


KINDS = ("mel", "spec", "mfcc", "waveform")


def compute(y, *, kind: str, **params) -> jax.Array:
    """One feature by its config name (`config.features.kind`), from a flat parameter set.

    `params` may hold the whole `config.features` group: each transform takes the keys
    it understands and ignores the rest (`n_mels` means nothing to 'spec', `sr` nothing
    to 'waveform'). As in librosa's mfcc, the filterbank norm is `mel_norm` there.
    """
    transforms = {"mel": melspectrogram_db, "spec": spectrogram_db, "mfcc": mfcc,
                  "waveform": waveform}
    if kind not in transforms:
        raise ValueError(f"unknown feature kind {kind!r}; expected one of {KINDS}")
    accepted = set(inspect.signature(transforms[kind]).parameters) - {"y", "mel_kwargs"}
    if kind == "mfcc":
        accepted |= set(inspect.signature(melspectrogram_db).parameters) - {"y", "norm"}
        accepted.add("mel_norm")
    return transforms[kind](y, **{k: v for k, v in params.items() if k in accepted})
