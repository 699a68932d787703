"""`optim.ema_decay`: the moving average of the weights against a recurrence computed by
hand in float64, training unchanged by it, evaluation (validation, test, predict) on it,
and the average surviving a checkpoint round trip and a config check."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import base
from jaxgenre import checkpoint, errors, models, parallel, validation
from jaxgenre.training import weight_average
from jaxgenre.training import steps as steps_lib
from jaxgenre.models import adapter


def _optim(ema_decay):
    return base.with_defaults({"optim": {
        "name": "adam", "learning_rate": 1e-2, "weight_decay": 0.0,
        "schedule": "constant", "ema_decay": ema_decay}}).optim


@pytest.mark.parametrize("decay", [0.9, 0.5])  # 0.5: the cap binds from the 8th update
def test_the_average_follows_the_warmed_up_recurrence_and_leaves_the_updates_alone(decay):
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
              "b": jnp.asarray(rng.normal(size=4), jnp.float32)}
    plain = steps_lib.create_optimizer(_optim(0.0), 20)
    averaged = steps_lib.create_optimizer(_optim(decay), 20)
    p_plain, p_avg = params, params
    s_plain, s_avg = plain.init(params), averaged.init(params)
    expected = {k: np.asarray(v, np.float64) for k, v in params.items()}
    for n in range(1, 21):
        grads = {k: jnp.asarray(rng.normal(size=v.shape), jnp.float32) for k, v in params.items()}
        u_plain, s_plain = plain.update(grads, s_plain, p_plain)
        u_avg, s_avg = averaged.update(grads, s_avg, p_avg)
        for k in params:  # the average never feeds back into training
            np.testing.assert_array_equal(u_plain[k], u_avg[k])
        p_plain, p_avg = optax.apply_updates(p_plain, u_plain), optax.apply_updates(p_avg, u_avg)
        d = min(decay, (1 + n) / (10 + n))  # TF's ExponentialMovingAverage with num_updates
        expected = {k: d * expected[k] + (1 - d) * np.asarray(p_avg[k], np.float64)
                    for k in params}
    assert int(s_avg[-1].count) == 20
    for k in params:
        np.testing.assert_allclose(s_avg[-1].ema[k], expected[k], rtol=1e-5, atol=1e-6)
        assert not np.allclose(s_avg[-1].ema[k], p_avg[k], atol=1e-3)  # it is not the weights
    with pytest.raises(ValueError, match="needs the parameters"):
        averaged.update(grads, s_avg)


def _setup(ema_decay):
    model = models.create("spectral_cnn", 4, widths=(8, 16), dense_widths=(8,))
    tx = steps_lib.create_optimizer(_optim(ema_decay), 10)
    adapt = lambda x: adapter.adapt(x, channels=1)
    mesh = parallel.data_mesh(jax.devices()[:1])
    state = steps_lib.create_train_state(jax.random.PRNGKey(0), model, tx,
                                         jnp.zeros((1, 16, 20, 1)))
    return model, tx, adapt, mesh, jax.device_put(state, parallel.replicated(mesh))


def _batch(seed):
    rng = np.random.default_rng(seed)
    return {"inputs": rng.normal(size=(8, 16, 20)).astype(np.float32),
            "labels": rng.integers(0, 4, 8).astype(np.int32),
            "mask": np.ones(8, np.float32), "clip_index": np.arange(8)}


@pytest.mark.slow  # two runs, ~23 s; the recurrence itself is tested by default
def test_training_is_unchanged_and_prediction_uses_the_average(tmp_path):
    runs = {}
    for decay in (0.0, 0.8):
        model, tx, adapt, mesh, state = _setup(decay)
        steps = steps_lib.compile_steps(model, tx, adapt, mesh)
        for i in range(6):
            state, _ = steps.train(state, {k: jnp.asarray(v) for k, v in _batch(i).items()})
        runs[decay] = (state, steps, model, adapt)
    (plain, _, model, adapt), (avg, steps, _, _) = runs[0.0], runs[0.8]
    jax.tree.map(np.testing.assert_array_equal, plain.params, avg.params)
    batch = {k: jnp.asarray(v) for k, v in _batch(99).items()}
    ema = avg.opt_state[-1].ema
    by_hand = jax.nn.softmax(model.apply({"params": ema, "batch_stats": avg.batch_stats},
                                         adapt(batch["inputs"]), train=False), axis=-1)
    np.testing.assert_allclose(steps.predict(avg, batch), by_hand, rtol=1e-5, atol=1e-6)
    assert not np.allclose(steps.predict(avg, batch), steps.predict(plain, batch), atol=1e-4)

    # A checkpoint round trip keeps the average where evaluation finds it.
    ckpt = checkpoint.Checkpoints(str(tmp_path), keep=1, use_async=False)
    ckpt.save(avg, {"epoch": 1, "best_valid_accuracy": 0.0})
    restored, _ = ckpt.restore_latest(checkpoint.abstract(avg))
    ckpt.close()
    assert isinstance(restored.opt_state[-1], weight_average.EmaState)
    np.testing.assert_array_equal(steps.predict(restored, batch), steps.predict(avg, batch))


@pytest.mark.parametrize("value", [1.0, -0.1, 1.5])
def test_a_decay_outside_zero_to_one_is_named(value):
    config = base.get_config()
    config.optim.ema_decay = value
    with pytest.raises(errors.UserError, match=r"optim.ema_decay must be a number in \[0, 1\)"):
        validation.check_config(config)


@pytest.mark.slow  # a run, ~15 s
def test_a_run_with_the_average_tests_and_predicts_with_it(tmp_path):
    """End to end: predict rebuilds the averaged optimiser from run.json and gets the
    probabilities test_predictions.csv holds (a state without the average would not
    restore: another optimiser's tree)."""
    import json

    from jaxgenre import experiments, predict
    from jaxgenre.results import clip_table
    from jaxgenre.data import synthetic
    from tests.test_sample_cnn import tiny

    config = tiny(base.cell(model="spectral_cnn", feature="mel"))
    config.optim.ema_decay = 0.9
    config.train.epochs = 2
    experiments.run_one(config, str(tmp_path))
    assert json.loads((tmp_path / "run.json").read_text())["config"]["optim"]["ema_decay"] == 0.9
    table = clip_table.read(str(tmp_path / "test_predictions.csv"))
    predictor = predict.Predictor(str(tmp_path))
    assert isinstance(predictor.state.opt_state[-1], weight_average.EmaState)
    clip_id, row = table.clip_ids[0], table.probabilities[0]
    name, index = clip_id.split("/synthetic.")
    y = synthetic.generate_clip(synthetic.CLASS_NAMES.index(name), int(index), seconds=2.0)
    np.testing.assert_allclose(predictor.probabilities(y), row, atol=1e-5)
