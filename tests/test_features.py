"""Parity of jaxgenre.features with librosa 0.11, one clip at a time, as users call it.

Acceptance bar (issue 3): max |Δ| ≤ 0.01 dB for the dB features and ≤ 0.02 for MFCC,
with ref=1.0 and ref='max', center True and False.
"""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from jaxgenre import features
from jaxgenre.features import filters, spectral
from jaxgenre.testing import signals

SR = 22050
DB_TOL = 0.01
MFCC_TOL = 0.02
KINDS = ["spec", "mel", "mfcc"]


def librosa_reference(y, kind, *, ref=1.0, center=True, top_db=80.0, n_fft=2048,
                      hop_length=512, **mel):
    """librosa on one clip, called directly (independent of jaxgenre.testing.reference)."""
    ref_value = np.max if ref == "max" else ref
    if kind == "spec":
        power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, center=center)) ** 2
        return librosa.power_to_db(power, ref=ref_value, top_db=top_db)
    mfcc_keys = ("n_mfcc", "dct_type", "norm", "lifter") if kind == "mfcc" else ()
    mfcc_args = {k: mel.pop(k) for k in mfcc_keys if k in mel}
    if "mel_norm" in mel:
        mel["norm"] = mel.pop("mel_norm")
    power = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=n_fft, hop_length=hop_length,
                                           center=center, **mel)
    db = librosa.power_to_db(power, ref=ref_value, top_db=top_db)
    return db if kind == "mel" else librosa.feature.mfcc(S=db, **mfcc_args)


def jaxgenre_feature(y, kind, **kwargs):
    fn = {"spec": features.spectrogram_db, "mel": features.melspectrogram_db,
          "mfcc": features.mfcc}[kind]
    if kind != "spec":
        kwargs.setdefault("sr", SR)
    return np.asarray(fn(y, **kwargs))


def assert_parity(got, expected, kind):
    assert got.shape == expected.shape, (got.shape, expected.shape)
    assert got.dtype == np.float32
    tol = MFCC_TOL if kind == "mfcc" else DB_TOL
    worst = float(np.max(np.abs(got - expected)))
    assert worst <= tol, f"{kind}: max |Δ| = {worst:.3g} > {tol}"


SIGNALS_3S = signals.test_signals(sr=SR, seconds=3.0)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("ref", [1.0, "max"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(SIGNALS_3S))
def test_3s_signals_match_librosa(name, kind, ref, center):
    y = SIGNALS_3S[name]
    got = jaxgenre_feature(y, kind, ref=ref, center=center)
    assert_parity(got, librosa_reference(y, kind, ref=ref, center=center), kind)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("ref", [1.0, "max"])
@pytest.mark.parametrize("kind", KINDS)
def test_batch_of_30s_clips_matches_librosa_clip_by_clip(kind, ref, center):
    clips = signals.test_signals(sr=SR, seconds=30.0)
    batch = np.stack(list(clips.values()))
    got = jaxgenre_feature(batch, kind, ref=ref, center=center)
    assert got.shape[0] == len(clips)
    for i, y in enumerate(clips.values()):
        assert_parity(got[i], librosa_reference(y, kind, ref=ref, center=center), kind)


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")
@pytest.mark.parametrize("n", [SR * 3 + 1, 12345, 2047, 2048, 700])
@pytest.mark.parametrize("kind", KINDS)
def test_odd_lengths_match_librosa(n, kind):
    y = signals.linear_chirp(sr=SR, n=n)
    for center in (True, False):
        if not center and n < 2048:
            with pytest.raises(ValueError, match="at least n_fft"):
                jaxgenre_feature(y, kind, center=False)
            continue
        got = jaxgenre_feature(y, kind, center=center)
        assert_parity(got, librosa_reference(y, kind, center=center), kind)


@pytest.mark.parametrize("kind", KINDS)
def test_ref_max_and_top_db_are_per_example_not_per_batch(kind):
    loud = signals.linear_chirp(sr=SR, n=SR * 2, amplitude=0.9)
    quiet = signals.white_noise(n=SR * 2, amplitude=1e-4)
    batch = np.stack([loud, quiet])
    for ref in (1.0, "max"):
        got = jaxgenre_feature(batch, kind, ref=ref)
        for i, y in enumerate(batch):
            assert_parity(got[i], librosa_reference(y, kind, ref=ref), kind)
    # The quiet clip's own peak is 0 dB under ref='max', whatever the batch holds.
    if kind != "mfcc":
        assert jaxgenre_feature(batch, kind, ref="max")[1].max() == pytest.approx(0.0, abs=1e-5)


def test_leading_axes_are_kept():
    y = np.stack([SIGNALS_3S["white_noise"], SIGNALS_3S["clipped_square"],
                  SIGNALS_3S["linear_chirp"]] * 2).reshape(2, 3, -1)
    got = jaxgenre_feature(y, "mel")
    assert got.shape == (2, 3, 128, 130)
    np.testing.assert_allclose(got[1, 2], librosa_reference(y[1, 2], "mel"), atol=DB_TOL)


PARAMETER_CASES = [
    ("mel", dict(n_mels=64, fmin=30.0, fmax=8000.0)),
    ("mel", dict(htk=True, norm=None)),
    ("mel", dict(n_fft=1024, hop_length=256)),
    ("mel", dict(hop_length=300)),  # hop does not divide n_fft: the gather path
    ("mel", dict(win_length=1000, window="hamming")),
    ("mel", dict(pad_mode="reflect")),
    ("spec", dict(n_fft=512, hop_length=128, window=("kaiser", 8.0))),
    ("spec", dict(top_db=None)),
    ("spec", dict(top_db=40.0, amin=1e-5)),
    ("mfcc", dict(n_mfcc=13, lifter=22)),
    ("mfcc", dict(dct_type=3, norm=None)),
    ("mfcc", dict(dct_type=1, n_mels=40, fmax=8000.0, mel_norm=None)),
]


@pytest.mark.parametrize("kind,params", PARAMETER_CASES)
def test_parameters_match_librosa(kind, params):
    y = SIGNALS_3S["white_noise"]
    got = jaxgenre_feature(y, kind, **params)
    ref_params = dict(params)
    if "win_length" in ref_params or "window" in ref_params or "pad_mode" in ref_params or \
            "amin" in ref_params:
        expected = _librosa_with_stft_options(y, kind, **ref_params)
    else:
        expected = librosa_reference(y, kind, **ref_params)
    assert_parity(got, expected, kind)


def _librosa_with_stft_options(y, kind, *, n_fft=2048, hop_length=512, win_length=None,
                               window="hann", pad_mode="constant", amin=1e-10, top_db=80.0):
    stft = librosa.stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                        window=window, pad_mode=pad_mode)
    power = np.abs(stft) ** 2
    if kind == "mel":
        power = librosa.filters.mel(sr=SR, n_fft=n_fft) @ power
    return librosa.power_to_db(power, amin=amin, top_db=top_db)


def test_works_inside_an_outer_jit():
    batch = np.stack([SIGNALS_3S["tone_on_bin"], SIGNALS_3S["white_noise"]])
    got = jax.jit(lambda y: features.mfcc(y, sr=SR))(jnp.asarray(batch))
    np.testing.assert_allclose(np.asarray(got)[1], librosa_reference(batch[1], "mfcc"),
                               atol=MFCC_TOL)


def test_constants_and_compilation_are_built_once_per_parameter_set():
    y = SIGNALS_3S["white_noise"][: SR * 2]
    features.melspectrogram_db(y, n_mels=96)
    compiled = spectral.transform._cache_size()
    banks = filters.mel_filterbank.cache_info().misses
    for _ in range(3):
        features.melspectrogram_db(y, n_mels=96)
    assert spectral.transform._cache_size() == compiled
    assert filters.mel_filterbank.cache_info().misses == banks
    features.melspectrogram_db(y, n_mels=80)  # a new parameter set compiles once more
    assert spectral.transform._cache_size() == compiled + 1


@pytest.mark.parametrize("bad,message", [
    (np.zeros(4000, np.int16), "floating-point audio.*divide by 32768"),
    (np.zeros(4000, np.complex64), "real floating-point"),
    (np.float32(0.5), "shape \\(..., samples\\)"),
    (np.zeros((2, 0), np.float32), "empty"),
])
def test_bad_arrays_get_a_clear_value_error(bad, message):
    for fn in (features.spectrogram_db, features.melspectrogram_db, features.mfcc,
               features.waveform):
        with pytest.raises(ValueError, match=message):
            fn(bad)


@pytest.mark.parametrize("kwargs,message", [
    (dict(ref=-1.0), "ref must be"), (dict(ref="min"), "ref must be"),
    (dict(ref=np.max), "ref='max' here"),
    (dict(pad_mode="mirror"), "pad_mode"), (dict(amin=0.0), "amin"),
    (dict(top_db=-3.0), "top_db"), (dict(fmin=5000.0, fmax=4000.0), "fmin < fmax"),
    (dict(window=np.hanning(2048)), "window as a name"),
])
def test_bad_parameters_get_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        features.melspectrogram_db(SIGNALS_3S["white_noise"], **kwargs)


def test_waveform_normalisation():
    batch = np.stack([SIGNALS_3S["linear_chirp"] * 0.3, SIGNALS_3S["silence"],
                      SIGNALS_3S["white_noise"]])
    peak = np.asarray(features.waveform(batch))
    np.testing.assert_allclose(np.abs(peak).max(axis=-1), [1.0, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(peak[0], batch[0] / np.abs(batch[0]).max(), atol=1e-6)
    rms = np.asarray(features.waveform(batch, norm="rms"))
    np.testing.assert_allclose(np.sqrt(np.mean(rms ** 2, axis=-1)), [1.0, 0.0, 1.0], atol=1e-4)
