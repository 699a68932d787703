"""The spectral kernel behind `jaxgenre.features`: STFT power, banded mel product,
dB with per-example ref/top_db, DCT, all for one clip inside one jit, run over a batch.

The public, librosa-shaped functions and their input checks live in `features`; this
module assumes valid input. What makes it fast, measured in BUILD_NOTES.md:
  * one clip at a time inside one jit (`lax.map`), so a clip's frames (~10 MB for
    30 s) are produced and consumed while warm, instead of streaming the whole batch's
    4x-overlapping frames through memory;
  * framing without a gather when hop_length divides n_fft: the padded signal is
    reshaped into hop-sized rows and n_fft / hop_length shifted row blocks are stacked;
  * a banded mel product: bands are cut into groups of 16 and each group multiplies
    only the FFT bins its triangles cover (13% of the dense FLOPs at librosa defaults);
  * dB, ref and top_db fuse into one pass over the small mel image;
  * XLA's CPU FFT keeps about one core busy on a clip-sized call (it only spreads
    much larger calls over threads, and those are memory-bound), so a concrete CPU
    batch is cut into one chunk per core and the chunks run concurrently, each
    reading the batch in place.
Static parameters are compile-time constants: filterbanks, windows and the DCT basis
are built once per parameter set (`filters` caches them), not per call.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import os
from typing import NamedTuple, Optional, Union

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxgenre.features import filters

Ref = Union[float, str]
MEL_GROUP = 16  # mel bands per block of the banded mel product


class Mel(NamedTuple):
    """The mel filterbank's parameters (`filters.mel_filterbank`)."""
    sr: int
    n_mels: int
    fmin: float
    fmax: float
    htk: bool
    norm: filters.MelNorm


class Dct(NamedTuple):
    """The cepstral step's parameters (`filters.dct_matrix` and the lifter)."""
    n_mfcc: int
    dct_type: int
    norm: Optional[str]
    lifter: float


@dataclasses.dataclass(frozen=True)
class Params:
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
    mel: Optional[Mel] = None
    dct: Optional[Dct] = None
    # musicnn's compression log10(1 + log_c * S) in place of dB (ref, amin, top_db unused)
    log_c: Optional[float] = None

    def n_frames(self, n_samples: int) -> int:
        padded = n_samples + (2 * (self.n_fft // 2) if self.center else 0)
        return 1 + (padded - self.n_fft) // self.hop_length

    def n_out(self) -> int:
        if self.dct is not None:
            return self.dct.n_mfcc
        if self.mel is not None:
            return self.mel.n_mels
        return 1 + self.n_fft // 2


# --------------------------------------------------------------------------- pieces


def frames(y: jax.Array, p: Params) -> jax.Array:
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
def mel_blocks(mel: Mel, n_fft: int):
    """Cuts the filterbank into (first_bin, last_bin + 1, weights^T) blocks of bands."""
    bank = filters.mel_filterbank(sr=mel.sr, n_fft=n_fft, n_mels=mel.n_mels, fmin=mel.fmin,
                                  fmax=mel.fmax, htk=mel.htk, norm=mel.norm)
    blocks = []
    for start in range(0, mel.n_mels, MEL_GROUP):
        rows = bank[start:start + MEL_GROUP]
        support = np.flatnonzero(rows.any(axis=0))
        lo, hi = (support[0], support[-1] + 1) if support.size else (0, 1)
        blocks.append((int(lo), int(hi), np.ascontiguousarray(rows[:, lo:hi].T)))
    return tuple(blocks)


def mel_power(power: jax.Array, p: Params) -> jax.Array:
    """(n_frames, n_bins) power → (n_frames, n_mels), multiplying only non-zero bands."""
    blocks = mel_blocks(p.mel, p.n_fft)
    return jnp.concatenate(
        [jnp.dot(power[:, lo:hi], w, precision=jax.lax.Precision.HIGHEST)
         for lo, hi, w in blocks], axis=-1)


def power_to_db(s: jax.Array, p: Params) -> jax.Array:
    """librosa.power_to_db on one example; ref='max' is this example's own maximum."""
    db = 10.0 * jnp.log10(jnp.maximum(p.amin, s))
    ref = jnp.max(s) if p.ref == "max" else p.ref
    db = db - 10.0 * jnp.log10(jnp.maximum(p.amin, ref))
    if p.top_db is not None:
        db = jnp.maximum(db, jnp.max(db) - p.top_db)
    return db


def one_clip(y: jax.Array, p: Params) -> jax.Array:
    """(samples,) → (n_out, n_frames) for one clip."""
    if p.center:
        half = p.n_fft // 2
        y = jnp.pad(y, (half, half), mode=p.pad_mode)
    spectrum = jnp.fft.rfft(frames(y, p), axis=-1)
    power = jnp.square(spectrum.real) + jnp.square(spectrum.imag)
    if p.mel is not None:
        power = mel_power(power, p)
    if p.log_c is not None:  # log1p: exact where log_c * S is small
        return (jnp.log1p(p.log_c * power) * np.float32(1 / np.log(10))).T
    db = power_to_db(power, p)  # (n_frames, n_bands)
    if p.dct is not None:
        n_mfcc, lifter = p.dct.n_mfcc, p.dct.lifter
        basis = filters.dct_matrix(n_mfcc, p.mel.n_mels, dct_type=p.dct.dct_type,
                                   norm=p.dct.norm)
        if lifter > 0:
            lift = 1.0 + (lifter / 2.0) * np.sin(np.pi * np.arange(1, n_mfcc + 1) / lifter)
            basis = (basis * lift[:, None]).astype(np.float32)
        db = jnp.dot(db, basis.T, precision=jax.lax.Precision.HIGHEST)
    return db.T


@functools.partial(jax.jit, static_argnames=("p", "count"))
def transform(y: jax.Array, start: jax.Array, p: Params, count: int) -> jax.Array:
    """Clips start .. start+count-1 of a (batch, samples) array → (count, n_out, n_frames).

    One clip at a time, read from `y` in place (indices past the end repeat the last
    clip and are dropped by the caller), so chunks of a batch run without copying it.
    """
    chex.assert_rank(y, 2)
    chex.assert_type(y, jnp.float32)
    last = y.shape[0] - 1
    out = jax.lax.map(lambda i: one_clip(y[jnp.minimum(i, last)], p),
                      start + jnp.arange(count))
    chex.assert_shape(out, (count, p.n_out(), p.n_frames(y.shape[1])))
    return out


# ------------------------------------------------------------------ batch dispatch

def cpu_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@functools.lru_cache(maxsize=1)
def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(cpu_workers(), "jaxgenre-features")


def run(y: jax.Array, p: Params) -> jax.Array:
    """Flattens leading axes, runs `transform`, restores them.

    Under an outer jit (a tracer), or off the CPU, this is the plain jitted transform.
    On a concrete CPU array the batch is cut into one equal chunk of clip indices per
    core and the chunks run concurrently (a clip-sized XLA FFT keeps ~one core busy).
    Every chunk has the same size, so there is one compiled shape; the last chunk may
    run past the end, repeating the last clip, and those rows are dropped.
    """
    lead, n = y.shape[:-1], y.shape[-1]
    flat = y.reshape((-1, n))
    batch = flat.shape[0]
    workers = min(batch, cpu_workers())
    on_cpu = not isinstance(flat, jax.core.Tracer) and all(
        d.platform == "cpu" for d in flat.devices())
    if workers < 2 or not on_cpu:
        out = transform(flat, 0, p, batch)
    else:
        per = math.ceil(batch / workers)
        parts = list(_pool().map(
            lambda i: transform(flat, i * per, p, per).block_until_ready(), range(workers)))
        out = jnp.concatenate(parts, axis=0)[:batch]
    return out.reshape(lead + out.shape[1:])
