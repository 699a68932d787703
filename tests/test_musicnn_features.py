"""musicnn's front end as a feature kind ('musicnn'), against librosa called as musicnn's
extractor calls it (musicnn/extractor.py, `batch_data`), with the padding of the
librosa it required (0.7/0.8: centred frames padded by reflection)."""

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest

from configs import base
from jaxgenre import features, validation
from jaxgenre.errors import UserError
from jaxgenre.features import FeatureSpec

SR = 16000
# DB_TOL (0.01 dB, tests/test_features.py) is a relative error of 0.23% in power, at
# most 0.001 in log10(1 + 10000 * power): the same tolerance in musicnn's units.
TOL = 1e-3


def musicnn_reference(y):
    """extractor.batch_data's spectrogram, (n_mels, frames) as librosa gives it, in
    float32 (musicnn's float16 cast overflows under NumPy 2; see the last test)."""
    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=256, n_fft=512, n_mels=96,
                                         pad_mode="reflect")
    return np.log10(10000 * mel + 1)


def _signal(seconds, seed, gain=0.4):
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    chirp = np.sin(2 * np.pi * (200 + 900 * t) * t)
    return (gain * chirp + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("seconds", [3.0, 1.234, 0.2])
def test_the_front_end_matches_musicnns_librosa_call(seconds):
    batch = np.stack([_signal(seconds, seed) for seed in range(3)])
    got = np.asarray(features.musicnn_logmel(batch))
    want = np.stack([musicnn_reference(y) for y in batch])
    assert got.shape == want.shape and got.shape[1] == 96 and got.dtype == np.float32
    assert float(want.max()) > 1.0  # a real signal, not silence
    assert float(np.max(np.abs(got - want))) <= TOL


def test_it_jits_keeps_leading_axes_and_equals_the_spec():
    y = np.stack([_signal(1.0, s) for s in range(4)]).reshape(2, 2, -1)
    jitted = np.asarray(jax.jit(lambda a: features.musicnn_logmel(a))(jnp.asarray(y)))
    assert jitted.shape[:3] == (2, 2, 96)
    np.testing.assert_allclose(jitted[1, 0], musicnn_reference(y[1, 0]), atol=TOL)
    spec = FeatureSpec.from_config({"kind": "musicnn"})
    np.testing.assert_allclose(np.asarray(spec.compute(y)), jitted, atol=1e-5)


def test_the_spec_knows_musicnns_fixed_parameters():
    spec = FeatureSpec.from_config({"kind": "musicnn"})
    assert (spec.sr, spec.hop_length, spec.n_rows, spec.example_rank) == (16000, 256, 96, 2)
    # musicnn's 3 s input is 187 frames (librosa.time_to_frames(3) + 1); the run's
    # rounding of 3 s is 188 and its example shape follows what it is given
    assert spec.frames(3.0) == 188 and spec.example_shape(187) == (96, 187)
    out = np.asarray(spec.compute(_signal(3.0, 0)))
    assert out.shape == (96, 1 + 48000 // 256)
    config = base.get_config()
    config.features.kind = "musicnn"
    with pytest.raises(UserError, match="sr=16000 .*hop_length=256"):
        FeatureSpec.from_config(config.features)  # the base's 22050 Hz / 512
    config.features.sr, config.features.hop_length = 16000, 256
    musicnn = FeatureSpec.from_config(config.features)
    assert musicnn == spec and musicnn.identity() == {"kind": "musicnn", "sr": 16000,
                                                      "hop_length": 256}
    with pytest.raises(UserError, match="fixed at sr=16000"):
        features.musicnn_logmel(_signal(1.0, 0), sr=22050)


def test_the_study_kinds_are_unchanged():
    config = base.get_config()
    assert features.STUDY_KINDS == ("mel", "spec", "mfcc", "waveform")
    assert [s.kind for s in features.every_kind(config.features)] == list(features.STUDY_KINDS)
    validation.check_config(config)  # the base's mel run still validates


def test_loud_audio_stays_finite_where_musicnns_float16_cast_overflows():
    y = _signal(1.0, 1, gain=30.0)  # loud bins: mel power above float16's 65504
    mel = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=256, n_fft=512, n_mels=96,
                                         pad_mode="reflect")
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.log10(10000 * mel.astype(np.float16) + 1)).all()
    got = np.asarray(features.musicnn_logmel(y))
    assert np.isfinite(got).all()
    assert float(np.max(np.abs(got - musicnn_reference(y)))) <= TOL
