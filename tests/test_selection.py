"""config.train.select: which epoch a run keeps as its best. The rules against epochs
chosen by hand, the validation log-loss against its definition, and two tiny runs whose
tested state is the epoch each rule names in their metrics.jsonl."""

import json
import math
import warnings

import numpy as np
import pytest

from jaxgenre import experiments
from jaxgenre.training import selection

# Four epochs: accuracy saturates at epoch 2 and again at 4; the loss falls throughout
# but for epoch 3.
ACCURACY = [0.6, 1.0, 0.9, 1.0]
LOSS = [1.0, 0.5, 0.7, 0.2]


def _chosen(rule, accuracy=ACCURACY, loss=LOSS):
    best, chosen = None, None
    for epoch, (a, l) in enumerate(zip(accuracy, loss), start=1):
        k = selection.key(rule, accuracy=a, loss=l)
        if selection.improves(rule, k, best):
            best, chosen = selection.stored(k), epoch
    return chosen


@pytest.mark.parametrize("rule, epoch", [("accuracy", 2), ("accuracy_loss", 4), ("loss", 4),
                                         ("last", 4)])
def test_each_rule_keeps_the_epoch_it_names(rule, epoch):
    assert _chosen(rule) == epoch


def test_ties_keep_the_earlier_epoch_and_an_undefined_loss_never_wins():
    assert _chosen("accuracy_loss", [1.0, 1.0, 1.0], [0.3, 0.3, 0.4]) == 1
    assert _chosen("loss", [0.5, 0.9], [0.4, float("nan")]) == 1
    assert _chosen("loss", [0.5, 0.9], [None, 2.0]) == 2
    with pytest.raises(ValueError, match="train.select must be one of"):
        selection.key("best", accuracy=1.0, loss=0.1)


def test_the_validation_loss_is_the_mean_negative_log_likelihood():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.5, 0.2, 0.3]])
    expected = -(math.log(0.7) + math.log(0.6) + math.log(0.2)) / 3
    assert selection.clip_log_loss([0, 1, 1], probabilities) == pytest.approx(expected, 1e-12)
    # a class no validation clip has still counts in the probabilities' columns
    assert selection.clip_log_loss([0, 0], probabilities[:2]) == pytest.approx(
        -(math.log(0.7) + math.log(0.3)) / 2, 1e-12)


def test_a_float32_softmax_gives_the_loss_of_its_renormalised_rows_without_a_warning():
    # float32 rows summing to 1 within ~1e-7 only: scikit-learn 1.9 warned on each epoch
    logits = np.random.default_rng(0).normal(size=(50, 10)).astype(np.float32) * 4
    p32 = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.abs(p32.astype(np.float64).sum(axis=1) - 1).max() > 1.5e-8
    labels = np.arange(50) % 10
    p64 = p32.astype(np.float64) / p32.astype(np.float64).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p64[np.arange(50), labels]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert selection.clip_log_loss(labels, p32) == pytest.approx(expected, 1e-12)


def _config(select):
    """A tiny run whose validation figures make the four rules choose four epochs
    (measured here: accuracy 0.1, 0.1, 0.1, 0, 0 and loss 32.4, 25.6, 13.6, 4.17, 4.18,
    so 1, 3, 4 and 5); the test reads the choice off metrics.jsonl whatever they are."""
    from tests.test_train_run import _config as tiny_run

    config = tiny_run(5)  # the resume tests' tiny run, with a faster learning rate
    config.optim.learning_rate = 3e-2
    config.train.select = select
    config.eval.plots = False
    return config


def _by_definition(select, accuracy, loss):
    """The epoch index each rule names, computed from its definition (ties: earliest)."""
    if select == "last":
        return len(accuracy) - 1
    if select == "loss":
        return int(np.argmin(loss))
    top = [i for i, a in enumerate(accuracy) if a == max(accuracy)]
    return top[0] if select == "accuracy" else min(top, key=lambda i: (loss[i], i))


@pytest.mark.slow  # a run per rule, ~31 s in all; the rules are tested by default
@pytest.mark.parametrize("select", selection.RULES)
def test_a_run_tests_the_epoch_its_rule_selects(tmp_path, select):
    out = experiments.run_one(_config(select), str(tmp_path))
    with open(tmp_path / "metrics.jsonl") as f:
        epochs = [json.loads(line) for line in f]
    accuracy = [e["valid_accuracy"] for e in epochs]
    loss = [e["valid_loss"] for e in epochs]
    chosen = _by_definition(select, accuracy, loss)
    assert int(out["state"].step) == epochs[chosen]["step"], (select, accuracy, loss)
