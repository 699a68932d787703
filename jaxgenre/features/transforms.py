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

The transform itself (and why it is fast) is in `spectral`; this module is the
librosa-shaped interface: names, defaults, and input checks that turn a wrong rank,
dtype or parameter into a ValueError that says what to change.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxgenre.features import filters, spectral
from jaxgenre.errors import UserError

Ref = spectral.Ref
_PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


# ------------------------------------------------------------------- validation


def _as_audio(y, name: str) -> jax.Array:
    """Checks rank and dtype at the boundary; returns float32."""
    if not hasattr(y, "dtype") or not hasattr(y, "shape"):
        y = np.asarray(y)
    if y.ndim < 1:
        raise UserError(f"{name} expects audio of shape (..., samples); got a scalar")
    if not jnp.issubdtype(y.dtype, jnp.floating):
        hint = (" Integer PCM: divide by 32768 (int16) or use jaxgenre.audio.load_audio."
                if jnp.issubdtype(y.dtype, jnp.integer) else "")
        raise UserError(f"{name} expects real floating-point audio, got dtype {y.dtype}.{hint}")
    if y.shape[-1] == 0 or any(d == 0 for d in y.shape):
        raise UserError(f"{name} got an empty array of shape {tuple(y.shape)}")
    return jnp.asarray(y, dtype=jnp.float32)


def _stft_params(name: str, n_samples: int, *, n_fft, hop_length, win_length, window, center,
                 pad_mode, ref, amin, top_db, mel=None, dct=None) -> spectral.Params:
    if n_fft < 2 or hop_length < 1:
        raise UserError(f"{name}: need n_fft >= 2 and hop_length >= 1, "
                         f"got n_fft={n_fft}, hop_length={hop_length}")
    if pad_mode not in _PAD_MODES:
        raise UserError(f"{name}: pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    if not (isinstance(ref, str) and ref == "max" or isinstance(ref, (int, float)) and ref > 0):
        hint = " (librosa's ref=np.max is ref='max' here)" if callable(ref) else ""
        raise UserError(f"{name}: ref must be a positive number or 'max', got {ref!r}{hint}")
    if amin <= 0:
        raise UserError(f"{name}: amin must be strictly positive, got {amin}")
    if top_db is not None and top_db < 0:
        raise UserError(f"{name}: top_db must be non-negative or None, got {top_db}")
    if not center and n_samples < n_fft:
        raise UserError(f"{name}: with center=False the signal ({n_samples} samples) must be "
                         f"at least n_fft={n_fft} long; pad it or use center=True")
    if center and pad_mode in ("reflect", "symmetric") and n_samples <= n_fft // 2:
        raise UserError(f"{name}: pad_mode={pad_mode!r} needs more than n_fft // 2 = "
                         f"{n_fft // 2} samples, got {n_samples}; use pad_mode='constant'")
    if isinstance(window, (list, np.ndarray)):
        raise UserError(f"{name}: pass the window as a name or (name, param) tuple, "
                         "e.g. 'hann' or ('kaiser', 8.0)")
    return spectral.Params(n_fft=int(n_fft), hop_length=int(hop_length),
                           win_length=int(win_length or n_fft), window=window,
                           center=bool(center), pad_mode=pad_mode,
                           ref=ref if ref == "max" else float(ref), amin=float(amin),
                           top_db=None if top_db is None else float(top_db), mel=mel, dct=dct)


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
    return spectral.run(y, p)


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
    return spectral.run(y, p)


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
        raise UserError(f"mfcc: lifter must be >= 0, got {lifter}")
    mel_kwargs = dict(mel_kwargs)
    if "mel_norm" in mel_kwargs:
        mel_kwargs["norm"] = mel_kwargs.pop("mel_norm")
    p = _mel_params("mfcc", y.shape[-1], sr=sr, **mel_kwargs)
    filters.dct_matrix(n_mfcc, p.mel.n_mels, dct_type=dct_type, norm=norm)  # validates
    dct = spectral.Dct(int(n_mfcc), int(dct_type), norm, float(lifter))
    return spectral.run(y, dataclasses.replace(p, dct=dct))


def _mel_params(name: str, n_samples: int, *, sr: int = 22050, n_fft: int = 2048,
                hop_length: int = 512, win_length: Optional[int] = None,
                window: filters.WindowSpec = "hann", n_mels: int = 128, fmin: float = 0.0,
                fmax: Optional[float] = None, htk: bool = False,
                norm: filters.MelNorm = "slaney", center: bool = True,
                pad_mode: str = "constant", ref: Ref = 1.0, amin: float = 1e-10,
                top_db: Optional[float] = 80.0) -> spectral.Params:
    fmax = sr / 2.0 if fmax is None else float(fmax)
    try:  # validates the filterbank parameters and caches the bank for the trace
        filters.mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=float(fmin),
                               fmax=fmax, htk=htk, norm=norm)
    except ValueError as e:
        raise UserError(f"{name}: {e}") from None
    return _stft_params(name, n_samples, n_fft=n_fft, hop_length=hop_length,
                        win_length=win_length, window=window, center=center,
                        pad_mode=pad_mode, ref=ref, amin=amin, top_db=top_db,
                        mel=spectral.Mel(int(sr), int(n_mels), float(fmin), fmax, bool(htk),
                                         norm))


# musicnn's front end (Pons & Serra; musicnn/configuration.py): 16 kHz, a 512-point Hann
# STFT every 256 samples, 96 mel bands. Its extractor calls librosa's melspectrogram with
# librosa's defaults of the time (musicnn 0.1.0 requires librosa 0.7 or 0.8): power 2,
# Slaney mel bands with area norm, centred frames padded by reflection (librosa >= 0.10
# pads with zeros instead).
MUSICNN = {"sr": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 96, "pad_mode": "reflect"}
MUSICNN_LOG_C = 10000.0


def musicnn_logmel(y, *, sr: int = 16000, hop_length: int = 256) -> jax.Array:
    """musicnn's input, log10(1 + 10000 * mel power): `(..., 96, n_frames)` float32.

    Equals musicnn's `extractor.batch_data` before it cuts patches, i.e.
    `np.log10(10000 * librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256,
    n_fft=512, n_mels=96, pad_mode='reflect') + 1)`, except that musicnn casts the mel
    power to float16 first (which overflows to inf under NumPy 2 for loud bins): this
    stays float32. The parameters are the pretrained models'; `sr` and `hop_length`
    are taken only to refuse other values, as the feature spec passes them.
    """
    y = _as_audio(y, "musicnn_logmel")
    if (sr, hop_length) != (MUSICNN["sr"], MUSICNN["hop_length"]):
        raise UserError(f"musicnn's front end is fixed at sr={MUSICNN['sr']}, hop_length="
                        f"{MUSICNN['hop_length']} (its pretrained weights'); got sr={sr}, "
                        f"hop_length={hop_length}")
    p = _mel_params("musicnn_logmel", y.shape[-1], **MUSICNN)
    return spectral.run(y, dataclasses.replace(p, log_c=MUSICNN_LOG_C))


# PANNs' front end (Kong et al., "PANNs: Large-Scale Pretrained Audio Neural Networks for
# Audio Pattern Recognition", 2020; the 32 kHz Cnn14 checkpoint, via torchlibrosa): a
# 1024-point Hann STFT every 320 samples of 32 kHz audio (centred, reflect-padded), power
# 2, 64 Slaney mel bands from 50 to 14,000 Hz, then 10 log10(max(S, 1e-10)) with ref 1.0
# and no top_db clipping.
PANNS = {"sr": 32000, "n_fft": 1024, "hop_length": 320, "n_mels": 64, "fmin": 50.0,
         "fmax": 14000.0, "pad_mode": "reflect", "ref": 1.0, "amin": 1e-10, "top_db": None}
# The kinds whose parameters are a pretrained model's and cannot be changed: what the
# feature spec checks `sr` and `hop_length` against.
FIXED_FRONT_ENDS = {"musicnn": MUSICNN, "panns": PANNS}


def panns_logmel(y, *, sr: int = 32000, hop_length: int = 320) -> jax.Array:
    """PANNs' input, the log-mel power in dB: `(..., 64, n_frames)` float32.

    Equals `librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=32000, n_fft=1024,
    hop_length=320, n_mels=64, fmin=50, fmax=14000, pad_mode='reflect'), ref=1.0,
    amin=1e-10, top_db=None)`, which is what torchlibrosa's Spectrogram and
    LogmelFilterBank compute inside PANNs' models. `sr` and `hop_length` are taken only
    to refuse other values, as the feature spec passes them.
    """
    y = _as_audio(y, "panns_logmel")
    if (sr, hop_length) != (PANNS["sr"], PANNS["hop_length"]):
        raise UserError(f"PANNs' front end is fixed at sr={PANNS['sr']}, hop_length="
                        f"{PANNS['hop_length']} (its pretrained weights'); got sr={sr}, "
                        f"hop_length={hop_length}")
    return spectral.run(y, _mel_params("panns_logmel", y.shape[-1], **PANNS))


def waveform(y, *, norm: str = "peak") -> jax.Array:
    """The study's waveform input: each example scaled to peak |y| = 1 ('peak') or to
    unit RMS ('rms'). Silent examples stay all-zero. Shape is unchanged."""
    y = _as_audio(y, "waveform")
    if norm not in ("peak", "rms"):
        raise UserError(f"waveform: norm must be 'peak' or 'rms', got {norm!r}")
    return _normalise(y, norm)


@functools.partial(jax.jit, static_argnames="norm")
def _normalise(y: jax.Array, norm: str) -> jax.Array:
    if norm == "peak":
        scale = jnp.max(jnp.abs(y), axis=-1, keepdims=True)
    else:
        scale = jnp.sqrt(jnp.mean(jnp.square(y), axis=-1, keepdims=True))
    return jnp.where(scale > 0, y / jnp.where(scale > 0, scale, 1.0), 0.0)
