"""Intervals and tests against independent computations: statsmodels' Wilson interval and
exact McNemar, scikit-learn's macro figures and AUC on every resample, a percentile
bootstrap written out by hand, and the minimum detectable difference against simulated
power of the exact test."""

import numpy as np
import pytest
from scipy import stats as sps
from sklearn import metrics as skm
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint

from jaxgenre import stats


@pytest.mark.parametrize("correct, n", [(0, 10), (7, 10), (250, 290), (290, 290), (1, 3)])
def test_wilson_interval_equals_statsmodels(correct, n):
    ours = stats.wilson_interval(correct, n)
    theirs = proportion_confint(correct, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("table", [[[30, 9], [2, 59]], [[50, 0], [0, 50]], [[10, 13], [3, 4]],
                                   [[0, 1], [12, 0]]])
def test_exact_mcnemar_equals_statsmodels(table):
    # Rebuild per-clip correctness from the 2 x 2 table (rows: a right / wrong).
    (both, a_only), (b_only, neither) = table
    a = np.array([1] * both + [1] * a_only + [0] * b_only + [0] * neither, bool)
    b = np.array([1] * both + [0] * a_only + [1] * b_only + [0] * neither, bool)
    ours = stats.mcnemar(a, b)
    assert (ours["a_only"], ours["b_only"]) == (a_only, b_only)
    expected = sm_mcnemar(np.array(table), exact=True).pvalue if a_only + b_only else 1.0
    np.testing.assert_allclose(ours["p_value"], expected, rtol=1e-12)


def test_a_textbook_mcnemar_by_hand():
    # 1 vs 9 discordant clips: p = 2 * P(X <= 1), X ~ Bin(10, 1/2) = 2 * 11 / 1024.
    a = np.array([True] * 1 + [False] * 9 + [True] * 20)
    b = np.array([False] * 1 + [True] * 9 + [True] * 20)
    assert stats.mcnemar(a, b)["p_value"] == pytest.approx(22 / 1024)


def _random_case(seed, n=60, classes=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    probs = rng.dirichlet(np.ones(classes), n)
    probs[np.arange(n), labels] += rng.uniform(0, 0.6, n)
    return labels, probs / probs.sum(1, keepdims=True)


def test_macro_figures_on_many_resamples_equal_sklearn_on_each():
    labels, probs = _random_case(0)
    rng = np.random.default_rng(1)
    index = rng.integers(0, labels.size, (25, labels.size))
    preds = probs.argmax(1)
    ours = stats.macro_prf(labels[index], preds[index], 5)
    auc = stats.macro_auc(labels[index], probs[index])
    for r, i in enumerate(index):
        # sklearn without labels=: the classes among the resample's labels or predictions
        expected = skm.precision_recall_fscore_support(labels[i], preds[i], average="macro",
                                                       zero_division=0)[:3]
        np.testing.assert_allclose([ours["macro_precision"][r], ours["macro_recall"][r],
                                    ours["macro_f1"][r]], expected)
        present = [c for c in range(5) if 0 < np.sum(labels[i] == c) < labels.size]
        expected = np.mean([skm.roc_auc_score(labels[i] == c, probs[i][:, c]) for c in present])
        np.testing.assert_allclose(auc[r], expected)


def test_intervals_are_seeded_contain_the_estimate_and_match_a_hand_percentile_bootstrap():
    labels, probs = _random_case(2, n=80)
    first = stats.metric_intervals(labels, probs, seed=5, resamples=500)
    assert first == stats.metric_intervals(labels, probs, seed=5, resamples=500)
    assert first != stats.metric_intervals(labels, probs, seed=6, resamples=500)
    preds = probs.argmax(1)
    values = {"macro_f1": skm.f1_score(labels, preds, average="macro"),
              "macro_auc": skm.roc_auc_score(labels, probs, multi_class="ovr")}
    for key, value in values.items():
        low, high = first[f"{key}_ci"]
        assert low <= value <= high and high - low < 0.5
    # BCa against a plain percentile bootstrap done by hand: close on a smooth statistic.
    rng = np.random.default_rng(0)
    resampled = rng.integers(0, labels.size, (4000, labels.size))
    f1s = [skm.f1_score(labels[i], preds[i], average="macro") for i in resampled[:1000]]
    hand = np.percentile(f1s, [2.5, 97.5])
    np.testing.assert_allclose(first["macro_f1_ci"], hand, atol=0.05)


def test_one_test_clip_per_class_gets_a_real_interval_that_holds_the_estimate(tmp_path):
    """A grid run on 10 test clips (one per class) once got macro precision 0.85 with a
    'BCa interval' of [0.9, 0.9], and its interval plot crashed on the negative bar."""
    from jaxgenre import plots

    labels = np.arange(10)
    preds = labels.copy()
    preds[3] = 4  # class 3 missed, class 4 predicted twice
    probs = np.full((10, 10), 0.01)
    probs[labels, preds] = 0.91
    # By hand: precision 1 for 8 classes, 1/2 for class 4, 0 for class 3 -> 8.5 / 10.
    values = {"macro_precision": 0.85, "macro_recall": 0.9, "macro_f1": (8 + 2 / 3) / 10}
    ours = stats.macro_prf(labels[None], preds[None], 10)
    report = {"n": 10, "accuracy": 0.9, **{k: float(ours[k][0]) for k in values},
              "macro_auc": skm.roc_auc_score(labels, probs, multi_class="ovr")}
    report.update(stats.metric_intervals(labels, probs, seed=0, resamples=1000))
    for key, value in values.items():
        assert report[key] == pytest.approx(value)
        low, high = report[f"{key}_ci"]
        assert low <= value <= high and high - low > 0.1, (key, low, high)
    # The plot draws an interval that leaves its estimate out instead of failing.
    report["macro_f1_ci"] = (0.9, 0.95)
    plots.metric_intervals(report, str(tmp_path / "intervals.png"))
    assert (tmp_path / "intervals.png").stat().st_size > 0


def test_paired_delta_interval_brackets_the_difference_and_is_zero_for_identical_runs():
    labels, probs = _random_case(3, n=100)
    a = probs.argmax(1)
    b = np.where(np.arange(100) % 4 == 0, labels, a)  # b fixes every fourth clip
    out = stats.paired_deltas(labels, a, b, 5, seed=0, resamples=500)
    assert out["delta_accuracy"] == pytest.approx(np.mean(b == labels) - np.mean(a == labels))
    assert 0 < out["delta_low"] <= out["delta_accuracy"] <= out["delta_high"]
    same = stats.paired_deltas(labels, a, a, 5, seed=0, resamples=200)
    assert (same["delta_accuracy"], same["delta_low"], same["delta_high"]) == (0.0, 0.0, 0.0)


def test_minimum_detectable_difference_has_the_power_it_claims():
    n, psi = 290, 0.2
    delta = stats.minimum_detectable_difference(n, psi)
    assert 0 < delta < psi
    # Simulate the exact McNemar test at that difference: about 80 % of runs reject.
    rng = np.random.default_rng(0)
    p10, p01 = (psi + delta) / 2, (psi - delta) / 2
    counts = rng.multinomial(n, [p10, p01, 1 - psi], size=2000)
    p = np.array([sps.binomtest(int(x), int(x + y), 0.5).pvalue if x + y else 1.0
                  for x, y, _ in counts])
    assert 0.72 < np.mean(p < 0.05) < 0.88
    assert stats.minimum_detectable_difference(10, 0.01) is None  # too few clips for any


def test_t_interval_equals_scipys():
    values = [0.61, 0.55, 0.7, 0.58, 0.66]
    expected = sps.t.interval(0.95, 4, loc=np.mean(values), scale=sps.sem(values))
    np.testing.assert_allclose(stats.t_interval(values), expected)


def test_corrected_resampled_ttest_by_hand():
    # d = 0.1, 0, 0.2, 0.1, 0.1: mean 0.1, s^2 = 0.02 / 4 = 0.005; corrected variance
    # (1/5 + 25/100) * 0.005 = 0.00225; t = 0.1 / 0.04743 = 2.1082; p = 2 P(T4 > t).
    out = stats.corrected_resampled_ttest([0.1, 0.0, 0.2, 0.1, 0.1], n_train=100, n_test=25)
    assert out["t"] == pytest.approx(0.1 / np.sqrt(0.00225))
    assert out["p_value"] == pytest.approx(2 * sps.t.sf(0.1 / np.sqrt(0.00225), 4))
    assert 0.1 < out["p_value"] < 0.11  # the uncorrected t-test would give 0.07
    assert stats.corrected_resampled_ttest([0.0, 0.0, 0.0], n_train=8, n_test=1)["p_value"] == 1
