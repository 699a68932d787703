"""Metrics against scikit-learn on random and edge-case predictions."""

import numpy as np
import pytest
from sklearn import metrics as skm

from jaxgenre.results import metrics


def _random_case(seed, n=300, k=10, skill=1.5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.standard_normal((n, k)) + skill * np.eye(k)[labels]
    logits[:, 3] += 0.1 * np.round(rng.standard_normal(n))  # ties in one class's scores
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_matches_sklearn(seed):
    labels, probs = _random_case(seed)
    preds = probs.argmax(1)
    report = metrics.classification_report(labels, probs)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(labels, preds))
    for ours, average in (("macro_precision", "precision"), ("macro_recall", "recall"),
                          ("macro_f1", "f1")):
        fn = {"precision": skm.precision_score, "recall": skm.recall_score,
              "f1": skm.f1_score}[average]
        assert report[ours] == pytest.approx(fn(labels, preds, average="macro",
                                                zero_division=0))
    np.testing.assert_array_equal(report["confusion"],
                                  skm.confusion_matrix(labels, preds, labels=range(10)))
    assert report["macro_auc"] == pytest.approx(
        skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"))


def test_roc_curves_in_the_report_by_hand():
    """Four examples, class 1's scores .9 .8 .8 .3 for labels 1 0 1 0: thresholds
    inf, .9, .8 (a tie: one positive and one negative together), .3."""
    labels = np.array([1, 0, 1, 0])
    p1 = np.array([.9, .8, .8, .3])
    probs = np.stack([1 - p1, p1], axis=1)
    fpr, tpr = metrics.classification_report(labels, probs)["roc_curves"][1]
    np.testing.assert_allclose(fpr, [0, 0, .5, 1])
    np.testing.assert_allclose(tpr, [0, .5, 1, 1])
    # AUC by the trapezoid rule over those points: .5 * .75 + .5 * 1 = .875
    assert metrics.classification_report(labels, probs)["per_class"]["1"]["auc"] == \
        pytest.approx(.875)


def test_absent_and_never_predicted_classes():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[.9, .1, 0], [.2, .8, 0], [.1, .9, 0], [.3, .7, 0], [.6, .4, 0]])
    report = metrics.classification_report(labels, probs, ["a", "b", "c"])
    preds = probs.argmax(1)
    assert report["macro_precision"] == pytest.approx(
        skm.precision_score(labels, preds, labels=[0, 1, 2], average="macro", zero_division=0))
    assert report["macro_f1"] == pytest.approx(
        skm.f1_score(labels, preds, labels=[0, 1, 2], average="macro", zero_division=0))
    assert report["auc_undefined_for"] == ["c"]  # no positive example of class c
    assert report["macro_auc"] == pytest.approx(np.mean([
        skm.roc_auc_score(labels == c, probs[:, c]) for c in (0, 1)]))


def test_vote_averages_segment_probabilities_per_clip():
    probs = np.array([[.9, .1], [.3, .7], [.2, .8], [.6, .4], [.1, .9]])
    clip_index = np.array([7, 7, 2, 2, 9])
    labels = np.array([0, 0, 1, 1, 1])
    clips, clip_probs, clip_labels = metrics.vote(probs, clip_index, labels)
    assert clips.tolist() == [7, 2, 9]
    np.testing.assert_allclose(clip_probs, [[.6, .4], [.4, .6], [.1, .9]])
    assert clip_labels.tolist() == [0, 1, 1]


def test_vote_by_log_probabilities_is_the_normalised_geometric_mean():
    probs = np.array([[.9, .1], [.3, .7], [.2, .8], [.6, .4], [.1, .9]])
    clip_index = np.array([7, 7, 2, 2, 9])
    _, clip_probs, _ = metrics.vote(probs, clip_index, np.zeros(5, int), mean="log_probability")
    by_hand = np.array([[np.sqrt(.9 * .3), np.sqrt(.1 * .7)], [np.sqrt(.2 * .6), np.sqrt(.8 * .4)],
                        [.1, .9]])
    np.testing.assert_allclose(clip_probs, by_hand / by_hand.sum(1, keepdims=True))
    with pytest.raises(ValueError, match="mean must be one of"):
        metrics.vote(probs, clip_index, np.zeros(5, int), mean="median")
