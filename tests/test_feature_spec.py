"""The feature spec (issue 23, item 1): one frozen object from `config.features` that says
what the kind implies, checked against librosa and hand-computed shapes."""

import librosa
import numpy as np
import pytest

from configs import base
from jaxgenre import features, models, validation
from jaxgenre.data import cache, sources
from jaxgenre.errors import UserError
from jaxgenre.features import FeatureSpec
from jaxgenre.models import adapter
from test_features import DB_TOL, MFCC_TOL

SR = 16000
PARAMS = {"sr": SR, "n_fft": 1024, "hop_length": 256, "n_mels": 40, "n_mfcc": 13,
          "fmin": 0.0, "fmax": None, "top_db": 80.0, "ref": 1.0}


def _tone(seconds=1.5, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.4 * np.sin(2 * np.pi * 330 * t) + 0.05 * noise).astype(np.float32)


@pytest.mark.parametrize("kind", ["spec", "mel", "mfcc", "waveform"])
def test_each_kind_computes_what_librosa_computes_with_the_groups_parameters(kind):
    y = _tone()
    spec = FeatureSpec.from_config({"kind": kind, **PARAMS})
    got = np.asarray(spec.compute(y))
    if kind == "spec":
        want = librosa.power_to_db(np.abs(librosa.stft(y, n_fft=1024, hop_length=256)) ** 2)
    elif kind in ("mel", "mfcc"):
        mel = librosa.power_to_db(librosa.feature.melspectrogram(
            y=y, sr=SR, n_fft=1024, hop_length=256, n_mels=40), top_db=80.0)
        want = mel if kind == "mel" else librosa.feature.mfcc(S=mel, n_mfcc=13)
    else:
        want = y / np.abs(y).max()
    assert got.shape == want.shape
    tol = {"mfcc": MFCC_TOL, "waveform": 1e-6}.get(kind, DB_TOL)
    assert float(np.max(np.abs(got - want))) <= tol


@pytest.mark.parametrize("kind, rows", [("spec", 513), ("mel", 40), ("mfcc", 13)])
def test_example_shape_and_frames_match_the_computed_feature(kind, rows):
    spec = FeatureSpec.from_config({"kind": kind, **PARAMS})
    out = np.asarray(spec.compute(_tone(seconds=2.0)[None]))
    # librosa's centred frames: 1 + 32000 // 256 = 126
    assert out.shape[1:] == spec.example_shape(126) == (rows, 126)
    assert spec.n_rows == rows and spec.example_rank == 2 and spec.time_unit == "frames"
    assert spec.frames(3.0) == 188  # round(3 * 16000 / 256) = round(187.5), half to even
    assert spec.frames(None) is None


def test_frames_round_as_runs_always_cut_segments():
    """seconds * sr first, then / hop_length (pipeline.seconds_to_frames did this before
    the spec): 0.35 s at 22050 Hz is 7717.499999999999 samples, 17.4999... frames -> 17;
    taking sr / hop_length = 50 first would give 17.5 -> 18."""
    spec = FeatureSpec.from_config({"kind": "mel", "sr": 22050, "hop_length": 441})
    assert 0.35 * 22050 / 441 < 17.5 and spec.frames(0.35) == 17
    assert FeatureSpec.from_config({"kind": "waveform", "sr": 22050}).frames(0.35) == 7717


def test_a_waveform_is_a_signal_counted_in_samples():
    spec = FeatureSpec.from_config({"kind": "waveform", **PARAMS})
    assert (spec.is_waveform, spec.example_rank, spec.time_unit) == (True, 1, "samples")
    assert spec.frames(0.5) == 8000 and spec.example_shape(8000) == (8000,)
    assert spec.n_rows is None and spec.params == ()  # no STFT parameter rides along


def test_a_kind_keeps_only_its_transforms_parameters():
    mel = FeatureSpec.from_config({"kind": "mel", **PARAMS})
    assert "n_mfcc" not in mel.kwargs and mel.kwargs["n_mels"] == 40
    # so the mel cache key ignores n_mfcc, and the MFCC's does not
    assert mel == FeatureSpec.from_config({"kind": "mel", **PARAMS, "n_mfcc": 30})
    mfcc = FeatureSpec.from_config({"kind": "mfcc", **PARAMS})
    assert mfcc != FeatureSpec.from_config({"kind": "mfcc", **PARAMS, "n_mfcc": 30})
    spectrogram = FeatureSpec.from_config({"kind": "spec", **PARAMS})
    assert spectrogram == FeatureSpec.from_config({"kind": "spec", **PARAMS, "n_mels": 64})
    assert spectrogram.identity() == {"kind": "spec", "n_fft": 1024, "hop_length": 256,
                                      "top_db": 80.0, "ref": 1.0}
    assert len({mel, mfcc, spectrogram}) == 3  # hashable, so jit may key on it


def test_missing_parameters_are_the_transforms_defaults():
    spec = FeatureSpec.from_config({"kind": "mel"})
    assert (spec.sr, spec.hop_length, spec.n_rows) == (22050, 512, 128)  # librosa's
    y = _tone()
    want = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050))
    got = np.asarray(spec.compute(y))
    assert got.shape == want.shape == spec.example_shape(want.shape[-1])
    assert float(np.max(np.abs(got - want))) <= DB_TOL


def test_sr_and_hop_length_are_held_once_and_reach_the_transform():
    spec = FeatureSpec(kind="mel", sr=16000, hop_length=256)  # no params: both as fields
    y = _tone(seconds=1.0)
    want = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256))
    got = np.asarray(spec.compute(y))
    assert got.shape == want.shape == spec.example_shape(want.shape[-1])
    assert float(np.max(np.abs(got - want))) <= DB_TOL
    assert spec.identity()["sr"] == 16000 and spec.identity()["hop_length"] == 256
    with pytest.raises(UserError, match="takes no parameter sr here"):
        FeatureSpec(kind="mel", sr=16000, hop_length=256, params=(("sr", 22050),))
    for bad in (None, 0, 22050.5, "22050"):
        with pytest.raises(UserError, match="features.sr must be a whole number"):
            FeatureSpec.from_config({"kind": "mel", "sr": bad})
    assert FeatureSpec.from_config({"kind": "mel", "sr": 16000.0}).sr == 16000  # from JSON


def test_unknown_keys_and_kinds_are_one_line_errors_naming_them():
    with pytest.raises(UserError, match="no key n_bands"):
        FeatureSpec.from_config({"kind": "mel", "n_bands": 64})
    with pytest.raises(UserError, match="unknown feature kind 'chroma'"):
        FeatureSpec.from_config({"kind": "chroma"})
    with pytest.raises(UserError, match="takes no parameter n_mels"):
        FeatureSpec(kind="waveform", sr=SR, hop_length=256, params=(("n_mels", 40),))


def test_the_base_config_gives_the_default_mel_and_validation_builds_it():
    config = base.get_config()
    spec = FeatureSpec.from_config(config.features)
    assert (spec.kind, spec.sr, spec.n_rows, spec.frames(3.0)) == ("mel", 22050, 128, 129)
    validation.check_config(config)
    assert [s.kind for s in features.every_kind(config.features)] == list(features.STUDY_KINDS)


def test_the_adapter_checks_the_models_input_rank_against_the_feature():
    mel = FeatureSpec.from_config({"kind": "mel"})
    wave = FeatureSpec.from_config({"kind": "waveform"})
    config = base.get_config()
    assert models.get_spec("sample_cnn").input_rank == wave.example_rank + 1
    with pytest.raises(UserError, match="'sample_cnn' takes inputs of rank 2.*'mel'"):
        adapter.for_model(base.cell(model="sample_cnn", feature="waveform").model, mel)
    with pytest.raises(UserError, match="'resnet18' takes inputs of rank 3.*'waveform'"):
        adapter.for_model(config.model, wave)
    image = adapter.for_model(config.model, mel)(np.zeros((2, 128, 20), np.float32))
    assert image.shape == (2, 128, 20, 3)  # ResNet-18: the channel repeated


def test_the_cache_shares_an_entry_between_groups_that_differ_only_elsewhere(tmp_path):
    source = sources.open_source("synthetic", clips_per_class=1, synthetic_seconds=1.0,
                                 clip_seconds=1.0)
    first = cache.build_features(source, FeatureSpec.from_config({"kind": "mel", **PARAMS}),
                                 str(tmp_path), progress=False)
    other_mfcc = FeatureSpec.from_config({"kind": "mel", **PARAMS, "n_mfcc": 30})
    again = cache.build_features(source, other_mfcc, str(tmp_path), progress=False)
    assert not first.hit and again.hit and again.path == first.path
    clip = source.load(source.clips[0])
    frames = librosa.feature.melspectrogram(y=clip, sr=SR, n_fft=1024, hop_length=256,
                                            n_mels=40).shape[-1]
    assert first.features.shape[1:] == FeatureSpec.from_config(
        {"kind": "mel", **PARAMS}).example_shape(frames)
