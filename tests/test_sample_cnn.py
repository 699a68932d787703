"""SampleCNN, the waveform model: its size by hand, any input length, and a waveform
cell that trains, tests and predicts like any other; 2-D models refuse waveforms."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base, waveform
from jaxgenre import experiments, models, validation
from jaxgenre.models import adapter


def test_parameter_count_by_hand_and_any_length():
    widths = (32, 32, 32, 64, 64, 64, 64, 128, 128, 128)
    model = models.create("sample_cnn", 10)
    expected, c_in = 0, 1
    for w in widths:  # conv (3 taps, no bias) + BatchNorm scale and bias
        expected += 3 * c_in * w + 2 * w
        c_in = w
    expected += 128 * 10 + 10  # the head
    for samples in (66150, 22050, 100):  # 3 s, 1 s, and shorter than the pools need
        x = jnp.zeros((2, samples, 1))
        variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
        assert sum(v.size for v in jax.tree.leaves(variables["params"])) == expected
        assert jax.eval_shape(model.apply, variables, x).shape == (2, 10)


def test_waveforms_are_standardised_per_example():
    y = jnp.asarray(np.random.default_rng(0).normal(3.0, 2.0, (2, 500)), jnp.float32)
    x = np.asarray(adapter.adapt(y))
    assert x.shape == (2, 500, 1)
    np.testing.assert_allclose(x.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=1), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match="waveform input"):
        adapter.adapt(y, input_size=(64, 64))


def test_a_2d_model_given_waveforms_names_the_model_that_takes_them():
    config = base.cell(model="resnet18", feature="waveform")
    with pytest.raises(ValueError, match="not features.kind='waveform'.*sample_cnn"):
        validation.check_config(config)
    validation.check_config(waveform.get_config())  # the waveform cell itself is valid


def tiny(config):
    """`config` shrunk to 30 clips of 2 s, 0.5 s segments, one epoch: a test-sized run."""
    config.data.synthetic.update(clips_per_class=3, seconds=2.0)
    config.data.update(clip_seconds=2.0, segment_seconds=0.5)
    config.train.update(epochs=1, batch_size=8)
    config.eval.update(batch_size=8, plots=False)
    return config


def test_the_waveform_cell_trains_tests_and_predicts(tmp_path):
    out = experiments.run_one(tiny(waveform.get_config()), str(tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"] == "sample_cnn" and results["feature"] == "waveform"
    assert results["test"]["clips"]["n"] == 10 and results["test"]["segments"]["n"] == 40
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["segment_frames"] == 11025  # 0.5 s of samples
    from jaxgenre import predict
    from jaxgenre.data import synthetic

    probs = predict.Predictor(str(tmp_path)).probabilities(
        synthetic.generate_clip(3, 7, seconds=1.3))
    assert probs.shape == (10,) and abs(float(probs.sum()) - 1) < 1e-5
    assert out["history"][0]["epoch"] == 1
