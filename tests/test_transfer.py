"""Transfer from musicnn: the pretrained weights under a new head, a probe's train steps
that move the head only, a fine-tune's backbone at its share of the rate, and the
configs that would feed the weights another front end refused before any work."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from jaxgenre import models, parallel, validation
from jaxgenre.errors import UserError
from jaxgenre.features import FeatureSpec
from jaxgenre.models import adapter, musicnn_port
from jaxgenre.training import steps as steps_lib
from jaxgenre.training import init_weights


def _state_after_steps(config, n_steps: int = 2):
    """(initial variables, state after `n_steps` train steps) of `config`'s model on
    random log-mel-like windows, as training builds them."""
    spec = FeatureSpec.from_config(config.features)
    model = models.create("musicnn", 10, **models.constructor_options(config.model))
    variables = init_weights.tagger_variables(config.model, 10, jax.random.PRNGKey(0))
    before = jax.tree.map(np.array, variables)  # the train step donates the state's buffers
    tx = steps_lib.create_optimizer(config.optim, 10, **models.optimizer_options(config.model))
    adapt = adapter.for_model(config.model, spec)
    rng = np.random.default_rng(0)
    sample = jnp.zeros((1,) + spec.example_shape(187))
    state = steps_lib.create_train_state(jax.random.PRNGKey(0), model, tx, adapt(sample),
                                         variables)
    mesh = parallel.data_mesh(jax.devices()[:1])
    steps = steps_lib.compile_steps(model, tx, adapt, mesh)
    state = jax.device_put(state, parallel.replicated(mesh))
    for _ in range(n_steps):
        batch = {"inputs": rng.uniform(0, 3, (4, 96, 187)).astype(np.float32),
                 "labels": rng.integers(0, 10, 4).astype(np.int32),
                 "mask": np.ones(4, np.float32)}
        state, _ = steps.train(state, batch)
    return before, jax.tree.map(np.asarray, {"params": state.params,
                                                "batch_stats": state.batch_stats})


def test_the_pretrained_weights_come_with_a_new_head_of_the_tasks_size():
    config = base.musicnn_transfer(probe=True)
    variables = init_weights.tagger_variables(config.model, 10, jax.random.PRNGKey(0))
    msd = musicnn_port.load_pretrained("MSD_musicnn")
    assert variables["params"]["dense_1"]["kernel"].shape == (200, 10)
    for group in ("params", "batch_stats"):
        for name, layer in msd[group].items():
            if name != "dense_1":
                jax.tree.map(np.testing.assert_array_equal, variables[group][name], layer)


def test_a_probe_trains_the_head_only_and_keeps_the_backbones_statistics():
    config = base.musicnn_transfer(probe=True)
    before, after = _state_after_steps(config)
    for group in ("params", "batch_stats"):
        for name, layer in before[group].items():
            if name != "dense_1":
                jax.tree.map(np.testing.assert_array_equal, after[group][name], layer)
    assert not np.allclose(after["params"]["dense_1"]["kernel"],
                           before["params"]["dense_1"]["kernel"])


def test_a_fine_tune_moves_the_backbone_too():
    config = base.musicnn_transfer(probe=False)
    config.augment.spec_augment = False
    before, after = _state_after_steps(config)
    for name in ("conv2d", "dense", "batch_normalization_9"):
        assert not np.allclose(after["params"][name]["kernel" if "conv" in name or name ==
                                                     "dense" else "scale"],
                               before["params"][name]["kernel" if "conv" in name or name ==
                                                      "dense" else "scale"]), name
    assert not np.allclose(after["batch_stats"]["batch_normalization"]["mean"],
                           before["batch_stats"]["batch_normalization"]["mean"])


@pytest.mark.parametrize("change,message", [
    ({"model": {"normalisation": "standardise"}}, "log-mel images as they are"),
    ({"model": {"input_size": (128, 128)}}, "96 mel bands as they are"),
    ({"model": {"checkpoint": "/some/weights.pth"}}, "model.checkpoint is for ImageNet"),
    ({"model": {"name": "musicnn_vgg", "freeze_backbone": False},
      "data": {"segment_seconds": 3.0}},
     "takes exactly 187 frames per window.*gives 188.*segment_seconds=2.992"),
    ({"features": {"kind": "mel"}}, "takes musicnn features"),
    ({"features": {"sr": 22050}}, "'musicnn' is a pretrained model's fixed front end"),
    ({"model": {"weights": "GTZAN"}}, "config.model.weights must be one of"),
])
def test_pretrained_musicnn_with_another_front_end_is_a_config_error(change, message):
    config = base.musicnn_transfer(probe=True)
    for section, values in change.items():
        config[section].update(values)
    with pytest.raises(UserError, match=message):
        validation.check_config(config)


def test_musicnn_from_random_weights_still_takes_96_bands_and_the_vgg_its_187_frames():
    config = base.musicnn_transfer(probe=False)
    config.model.update(pretrained=False, input_size=(128, 128))
    with pytest.raises(UserError, match="96 mel bands as they are"):
        validation.check_config(config)
    config.model.update(name="musicnn_vgg", input_size=None)
    validation.check_config(config)  # 2.992 s: 187 frames


def test_both_transfer_configs_validate_and_a_random_init_may_use_any_normalisation():
    for probe in (True, False):
        validation.check_config(base.musicnn_transfer(probe=probe))
    config = base.musicnn_transfer(probe=False)
    config.model.update(pretrained=False, normalisation="standardise")
    validation.check_config(config)


def test_the_grid_gains_the_music_pretrained_cells_and_their_table():
    from jaxgenre import experiments
    from jaxgenre.results import tables as tables_lib

    assert experiments.grid_cells(music=True)[-2:] == [("musicnn", "probe"),
                                                         ("musicnn", "finetune")]
    assert ("musicnn", "probe") not in experiments.grid_cells()
    assert experiments.music_weights_missing() is None  # the test command installs them
    grid = base.get_config()
    grid.train.epochs = 7
    for mode in ("probe", "finetune"):
        config = experiments.cell_config(grid, "musicnn", mode)
        validation.check_config(config)
        assert config.model.freeze_backbone == (mode == "probe")
        assert config.train.epochs == 7 and config.optim.name == grid.optim.name
    clips = lambda acc: {"test": {"clips": {"accuracy": acc, "macro_precision": acc,
                                            "macro_recall": acc, "macro_f1": acc}}}
    md, rows = tables_lib.grid_tables({("resnet18", "mel"): clips(0.5),
                                       ("musicnn", "probe"): clips(0.75),
                                       ("musicnn", "finetune"): clips(0.8)}, "folder")
    text = "\n".join(md)
    assert "## Music-pretrained: musicnn, Million Song Dataset weights" in text
    assert "| musicnn (MSD), probe | 0.7500 (-)" in text
    assert "| musicnn (MSD), fine-tuned | 0.8000 (-)" in text
    assert [(r["model"], r["feature"]) for r in rows][1:] == [("musicnn", "probe"),
                                                               ("musicnn", "finetune")]
    md, _ = tables_lib.grid_tables({("resnet18", "mel"): clips(0.5)}, "folder",
                                   music_missing="musicnn is not installed: pip install it")
    assert "Not run: musicnn is not installed: pip install it" in "\n".join(md)
