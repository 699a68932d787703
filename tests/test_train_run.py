"""train_and_evaluate end to end on a tiny synthetic set: outputs, determinism, resume."""

import json

import jax
import numpy as np

from configs import base
from jaxgenre import train


def _config(epochs):
    config = base.get_config()
    config.data.synthetic.update(clips_per_class=4, seconds=4.0)
    config.data.update(clip_seconds=4.0, segment_seconds=1.0)
    config.features.update(n_mels=32)
    config.model.update(name="spectral_cnn", pretrained=False)
    config.optim.learning_rate = 3e-3
    config.train.update(batch_size=16, epochs=epochs, log_every=2, checkpoint_every=1, keep=2)
    config.eval.batch_size = 16
    return config


def _params(out):
    return jax.tree.map(np.asarray, out["state"].params)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    whole = train.train_and_evaluate(_config(3), str(tmp_path / "whole"))
    lines = [json.loads(l) for l in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2, 3]
    results = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert results["initialisation"] == "random initialisation"
    assert 0.0 <= results["test"]["clips"]["accuracy"] <= 1.0
    assert results["test"]["clips"]["n"] == 10 and results["test"]["segments"]["n"] == 40
    for figure in ("confusion_clips", "confusion_segments", "roc_clips", "training_curves"):
        assert (tmp_path / "whole" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"

    # "Interrupted" after epoch 1, then the same command again with the full length.
    train.train_and_evaluate(_config(1), str(tmp_path / "resumed"))
    resumed = train.train_and_evaluate(_config(3), str(tmp_path / "resumed"))
    lines = [json.loads(l) for l in (tmp_path / "resumed" / "metrics.jsonl").read_text()
             .splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2, 3]  # the second run starts at epoch 2
    # The last-epoch weights of both runs are equal; so are the chosen best states.
    jax.tree.map(np.testing.assert_array_equal, _params(whole), _params(resumed))
    assert whole["results"]["test"] == resumed["results"]["test"]
