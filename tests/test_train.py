"""The train step: the same global batch on 1, 2, 4 and 8 devices gives the same parameters;
the same seed gives the same run; the loss goes down."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import base

from jaxgenre import models, parallel, validation
from jaxgenre.errors import UserError
from jaxgenre.training import augment
from jaxgenre.training import steps as steps_lib
from jaxgenre.models import adapter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model_and_tx():
    model = models.create("spectral_cnn", 4, widths=(8, 16, 16, 16, 16), dense_widths=(16, 8))
    optim = base.with_defaults({"optim": {
        "name": "adam", "learning_rate": 1e-2, "weight_decay": 0.0,
        "schedule": "constant"}}).optim
    return model, steps_lib.create_optimizer(optim, total_steps=10)


def _setup_state(n_devices=None, seed=0):
    model, tx = _model_and_tx()
    mesh = parallel.data_mesh(jax.devices()[:n_devices] if n_devices else None)
    state = steps_lib.create_train_state(jax.random.PRNGKey(seed), model, tx,
                                         jnp.zeros((1, 32, 40, 1)))
    return jax.device_put(state, parallel.replicated(mesh))


def _setup(n_devices=None, seed=0, augmentation=None):
    model, tx = _model_and_tx()
    adapt = lambda x: adapter.adapt(x, channels=1)
    mesh = parallel.data_mesh(jax.devices()[:n_devices] if n_devices else None)
    return (steps_lib.compile_steps(model, tx, adapt, mesh, augmentation or augment.Augmentation()),
            _setup_state(n_devices, seed), mesh)


def _batch(seed=0, n=16):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n).astype(np.int32)
    inputs = rng.standard_normal((n, 32, 40)).astype(np.float32)
    for i, label in enumerate(labels):  # a bright band whose height gives the class
        inputs[i, 8 * label:8 * label + 8] += 3.0
    return {"inputs": inputs, "labels": labels, "mask": np.ones(n, np.float32)}


def _shard(batch, mesh):
    return jax.device_put(batch, parallel.batch_sharding(mesh))


def test_same_seed_same_run_and_the_loss_goes_down():
    """Two runs from states built afresh from one seed (the step compiled once: a second
    compile of the same program would add ~9 s and test XLA, not the run)."""
    steps, _, mesh = _setup()
    runs = []
    for _ in range(2):
        state = _setup_state()
        losses = []
        for i in range(20):
            state, metrics = steps.train(state, _shard(_batch(i % 2), mesh))
            losses.append(float(metrics["loss"]))
        runs.append((jax.tree.map(np.asarray, state.params), losses))
    jax.tree.map(np.testing.assert_array_equal, runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert runs[0][1][-1] < 0.5 * runs[0][1][0], runs[0][1]


def test_an_equal_model_built_again_reuses_its_compiled_init():
    """steps.jitted_init: two models built from the same arguments share one compiled
    init (one "Compiling" line for both), and each key still gives the weights flax's
    own `model.init` gives for it."""
    from test_train_run import compile_log

    sample = jnp.zeros((1, 16, 20, 1))
    keys = [jax.random.PRNGKey(11), jax.random.PRNGKey(12)]
    # One convolution and one hidden layer, a size no other test builds (so nothing
    # compiled earlier) and cheap for flax's eager init below.
    models_ = [models.create("spectral_cnn", 3, widths=(4,), dense_widths=(4,))
               for _ in keys]
    assert models_[0] is not models_[1]
    states, log = compile_log(lambda: [
        steps_lib.create_train_state(key, model, optax.sgd(0.1), sample)
        for key, model in zip(keys, models_)])
    assert log.count("Compiling jit(init)") == 1, log
    for key, state in zip(keys, states):
        init_key, _ = jax.random.split(key)
        reference = models_[0].init(init_key, sample, train=False)["params"]
        jax.tree.map(np.testing.assert_allclose, state.params, reference)
    assert not np.allclose(states[0].params["conv0"]["kernel"],
                           states[1].params["conv0"]["kernel"])


def test_masked_rows_do_not_count():
    steps, state, mesh = _setup()
    batch = _batch()
    batch["mask"][8:] = 0.0
    relabelled = dict(batch, labels=batch["labels"].copy())
    relabelled["labels"][8:] = (batch["labels"][8:] + 1) % 4  # only masked rows change
    _, a = steps.train(jax.tree.map(jnp.copy, state), _shard(batch, mesh))
    _, b = steps.train(jax.tree.map(jnp.copy, state), _shard(relabelled, mesh))
    assert float(a["count"]) == 8.0
    assert float(a["loss"]) == float(b["loss"]) and float(a["correct"]) == float(b["correct"])


def test_unknown_optimiser_settings_are_named():
    optim = base.with_defaults({"optim": {
        "name": "adam", "learning_rate": 1e-3, "weight_decay": 0.0,
        "schedule": "linear"}}).optim
    with pytest.raises(ValueError, match="optim.schedule"):
        steps_lib.create_optimizer(optim, 10)
    optim.schedule, optim.name = "cosine", "lion"
    with pytest.raises(ValueError, match="optim.name"):
        steps_lib.create_optimizer(optim, 10)


EIGHT_DEVICES = """
import sys
sys.path.insert(0, 'tests')
import jax, numpy as np
from test_train import _setup, _batch, _shard
assert jax.device_count() == 8
results = {}
for n in (1, 2, 4, 8):
    steps, state, mesh = _setup(n)
    for i in range(3):
        state, metrics = steps.train(state, _shard(_batch(i), mesh))
    probs = steps.predict(state, _shard(_batch(5), mesh))
    assert len(probs.sharding.device_set) == n  # the work really was spread over n devices
    results[n] = (jax.tree.map(np.asarray, (state.params, state.batch_stats)),
                  np.asarray(probs), float(metrics['loss']))
p1, pr1, l1 = results[1]
for n in (2, 4, 8):
    pn, prn, ln = results[n]
    diff = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(pn)))
    print(n, 'devices: max param diff', diff, 'loss', l1, ln)
    assert diff <= 1e-5, (n, diff)
    np.testing.assert_allclose(pr1, prn, atol=1e-5)
# With every on-device augmentation (gain, SpecAugment, mixup across device boundaries,
# label smoothing): 8 devices still compute what 1 does.
from jaxgenre.training import augment
everything = augment.Augmentation(gain_db=6.0, freq_masks=2, time_masks=2, mixup_alpha=1.0,
                                  label_smoothing=0.1)
augmented = {}
for n in (1, 8):
    steps, state, mesh = _setup(n, augmentation=everything)
    for i in range(3):
        state, metrics = steps.train(state, _shard(_batch(i), mesh))
    augmented[n] = jax.tree.map(np.asarray, state.params)
diff = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(augmented[1]),
                                                       jax.tree.leaves(augmented[8])))
print('augmented, 8 devices: max param diff', diff)
assert diff <= 1e-5, diff
assert max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(augmented[1]),
                                                       jax.tree.leaves(p1))) > 1e-3
print('ok')
"""


@pytest.mark.slow  # ~55 s on 2 cores: eight simulated devices in a subprocess
def test_two_four_and_eight_devices_equal_one_device_for_the_same_global_batch():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", EIGHT_DEVICES], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "ok" in result.stdout, result.stdout + result.stderr


def _backbone_case(**optim_keys):
    """A two-group parameter tree ('head' and a backbone 'body'), its gradients, and
    the first update of `create_optimizer` with `optim_keys` against plain optax.adam."""
    params = {"body": {"kernel": jnp.arange(6.0).reshape(2, 3), "bias": jnp.ones(3)},
              "head": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
    grads = jax.tree.map(lambda p: jnp.cos(p) + 0.5, params)
    optim = base.with_defaults({"optim": {"name": "adam", "learning_rate": 1e-2,
                                          **optim_keys}}).optim
    reference = optax.adam(1e-2)
    expected, _ = reference.update(grads, reference.init(params), params)
    return optim, params, grads, expected


@pytest.mark.parametrize("scale", [0.1, 0.5])
def test_the_backbone_learns_at_its_share_of_the_rate_and_the_head_at_the_full_rate(scale):
    optim, params, grads, expected = _backbone_case(backbone_lr_scale=scale)
    tx = steps_lib.create_optimizer(optim, 10, head=("head",))
    updates, _ = tx.update(grads, tx.init(params), params)
    for name, factor in (("head", 1.0), ("body", scale)):
        jax.tree.map(lambda u, e: np.testing.assert_allclose(u, factor * e, rtol=1e-6),
                     updates[name], expected[name])


def test_a_frozen_backbone_does_not_move_weight_decay_included():
    optim, params, grads, expected = _backbone_case(weight_decay=0.1, name="adamw")
    tx = steps_lib.create_optimizer(optim, 10, head=("head",), freeze_backbone=True)
    updates, _ = tx.update(grads, tx.init(params), params)
    jax.tree.map(lambda u: np.testing.assert_array_equal(u, 0.0), updates["body"])
    reference = optax.adamw(1e-2, weight_decay=0.1, mask=steps_lib.decay_mask)
    head_expected, _ = reference.update(grads, reference.init(params), params)
    jax.tree.map(lambda u, e: np.testing.assert_allclose(u, e, rtol=1e-6),
                 updates["head"], head_expected["head"])


def test_the_backbone_options_need_a_model_that_names_its_head():
    optim, *_ = _backbone_case(backbone_lr_scale=0.5)
    with pytest.raises(UserError, match="names its head"):
        steps_lib.create_optimizer(optim, 10)
    config = base.get_config()
    config.model.name, config.optim.backbone_lr_scale = "spectral_cnn", 0.5
    with pytest.raises(UserError, match="spectral_cnn names none"):
        validation.check_config(config)
    config.optim.backbone_lr_scale, config.model.freeze_backbone = 1.0, True
    with pytest.raises(UserError, match="no frozen-backbone mode"):
        validation.check_config(config)
    config.model.name, config.model.freeze_backbone = "resnet18", False
    config.optim.backbone_lr_scale = 0.5  # ResNet-18's head: its ImageNet checkpoint's 'fc'
    validation.check_config(config)
