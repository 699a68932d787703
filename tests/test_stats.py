"""Intervals and tests against independent computations: statsmodels' Wilson interval and
exact McNemar, scikit-learn's macro figures and AUC on every resample, the bootstrap
intervals against scipy.stats.bootstrap called directly on the paired clips (and their
coverage of a known difference over simulated test sets), the corrected resampled t-test
against scipy's one-sample t-test, and the minimum detectable difference against
simulated power of the exact test."""

import numpy as np
import pytest
from scipy import stats as sps
from sklearn import metrics as skm
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint

from jaxgenre.results import stats


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


def _scipy_interval(data, statistic, *, seed, resamples, method="BCa"):
    """scipy.stats.bootstrap called directly on the paired per-clip arrays (an
    independent route to the interval: scipy resamples the clips, our code its indices)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = sps.bootstrap(data, statistic, paired=True, vectorized=True, method=method,
                           n_resamples=resamples,
                           random_state=np.random.default_rng(seed)).confidence_interval
    return float(ci.low), float(ci.high)


def _macro(key, classes, over="present"):
    return lambda y, p, axis=-1: stats.macro_prf(np.moveaxis(y, axis, -1),
                                                 np.moveaxis(p, axis, -1), classes,
                                                 over=over)[key]


def test_intervals_are_seeded_and_equal_scipys_bca_on_the_paired_clips():
    labels, probs = _random_case(2, n=80)
    first = stats.metric_intervals(labels, probs, seed=5, resamples=500)
    assert first == stats.metric_intervals(labels, probs, seed=5, resamples=500)
    assert first != stats.metric_intervals(labels, probs, seed=6, resamples=500)
    preds = probs.argmax(1)
    for key in ("macro_precision", "macro_recall", "macro_f1"):
        expected = _scipy_interval((labels, preds), _macro(key, 5), seed=5, resamples=500)
        np.testing.assert_allclose(first[f"{key}_ci"], expected, rtol=1e-12)
    np.testing.assert_allclose(first["accuracy_ci"], proportion_confint(
        int(np.sum(preds == labels)), 80, alpha=0.05, method="wilson"), rtol=1e-9)


def test_one_test_clip_per_class_gets_scipys_bca_interval(tmp_path):
    """A grid run on 10 test clips (one per class) once got macro precision 0.85 with a
    'BCa interval' of [0.9, 0.9], and its interval plot crashed on the negative bar."""
    from jaxgenre.results import plots

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
        expected = _scipy_interval((labels, preds), _macro(key, 10), seed=0, resamples=1000)
        np.testing.assert_allclose(report[f"{key}_ci"], expected, rtol=1e-12)
        assert expected[1] - expected[0] > 0.1
    # The plot draws an interval that leaves its estimate out instead of failing.
    report["macro_f1_ci"] = (0.9, 0.95)
    plots.metric_intervals(report, str(tmp_path / "intervals.png"))
    assert (tmp_path / "intervals.png").stat().st_size > 0


def test_bootstrap_falls_back_to_scipys_percentile_and_widens_only_as_documented():
    x = np.array([0, 1, 2, 3, 4, 5, 6, 7, 9, 9], float)
    # max: every jackknife value is 9 (two 9s), BCa's acceleration is 0/0 -> percentile.
    top = stats.bootstrap_interval(lambda i: np.max(x[i], -1), 10, seed=3, resamples=400)
    assert np.isnan(_scipy_interval((x,), lambda v, axis=-1: np.max(v, axis), seed=3,
                                    resamples=400)[0])
    np.testing.assert_allclose(top, _scipy_interval(
        (x,), lambda v, axis=-1: np.max(v, axis), seed=3, resamples=400, method="percentile"))
    # distinct values drawn: the observed 10 is (almost) never reached by a resample, so
    # the percentile interval leaves it out and is widened to it, by the docstring.
    y = np.arange(10.0)
    distinct = lambda v, axis=-1: np.sum(np.diff(np.sort(v, axis), axis=axis) > 0, axis) + 1.0
    low, high = stats.bootstrap_interval(lambda i: distinct(y[i]), 10, seed=3, resamples=400)
    pct = _scipy_interval((y,), distinct, seed=3, resamples=400, method="percentile")
    assert pct[1] < 10 and (low, high) == (pct[0], 10.0)


def test_paired_delta_intervals_equal_scipys_and_are_zero_for_identical_runs():
    labels, probs = _random_case(3, n=100)
    a = probs.argmax(1)
    b = np.where(np.arange(100) % 4 == 0, labels, a)  # b fixes every fourth clip
    out = stats.paired_deltas(labels, a, b, 5, seed=0, resamples=500)
    assert out["delta_accuracy"] == pytest.approx(np.mean(b == labels) - np.mean(a == labels))
    task = dict(average="macro", labels=range(5), zero_division=0)  # results.json's F1
    assert out["delta_macro_f1"] == pytest.approx(skm.f1_score(labels, b, **task)
                                                  - skm.f1_score(labels, a, **task))
    accuracy = lambda y, p, q, axis=-1: np.mean(q == y, axis) - np.mean(p == y, axis)
    f1 = _macro("macro_f1", 5, over="task")
    f1_delta = lambda y, p, q, axis=-1: f1(y, q, axis) - f1(y, p, axis)
    np.testing.assert_allclose((out["delta_low"], out["delta_high"]), _scipy_interval(
        (labels, a, b), accuracy, seed=0, resamples=500), rtol=1e-12)
    np.testing.assert_allclose((out["delta_f1_low"], out["delta_f1_high"]), _scipy_interval(
        (labels, a, b), f1_delta, seed=0, resamples=500), rtol=1e-12)
    same = stats.paired_deltas(labels, a, a, 5, seed=0, resamples=200)
    assert (same["delta_accuracy"], same["delta_low"], same["delta_high"]) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_interval_covers_a_known_difference_95_percent_of_the_time():
    """800 simulated test sets of 100 clips, each clip right for both classifiers (0.4),
    a only (0.15), b only (0.25) or neither (0.2): the true difference b - a is 0.10. A
    95 % interval holds it in 760 of 800 on average; binomial sd 6.2 sets (0.0077): the
    bounds are about 3.5 sd below and 3 above (BCa runs a little under nominal here),
    so a 90 % or a 99 % interval fails."""
    rng = np.random.default_rng(1)
    n, sims, hits = 100, 800, 0
    for s in range(sims):
        kind = rng.choice(4, size=n, p=[0.4, 0.15, 0.25, 0.2])
        a, b = np.isin(kind, (0, 1)), np.isin(kind, (0, 2))
        low, high = stats.bootstrap_interval(
            lambda i: np.mean(b[i], -1) - np.mean(a[i], -1), n, seed=s, resamples=400)
        hits += low <= 0.1 <= high
    assert 0.91 <= hits / sims <= 0.975, hits / sims


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
    assert out["reason"] is None


@pytest.mark.parametrize("differences", [[0.03, -0.01, 0.05, 0.02], [0.1, 0.1, 0.1 + 1e-6],
                                         [-0.2, 0.1, -0.05, -0.3, 0.0, -0.1]])
def test_corrected_resampled_ttest_equals_scipys_one_sample_t_test(differences):
    """With n_test / n_train -> 0 the correction vanishes: scipy's one-sample t-test.
    With a correction, scipy's t-test on the differences scaled by √((1/k) / (1/k + r))
    (which scales t by that factor and leaves the degrees of freedom)."""
    d = np.asarray(differences)
    k = d.size
    plain = sps.ttest_1samp(d, 0.0)
    out = stats.corrected_resampled_ttest(d, n_train=10, n_test=0)
    np.testing.assert_allclose((out["t"], out["p_value"]), (plain.statistic, plain.pvalue),
                               rtol=1e-9)
    r = 3 / 12
    scale = np.sqrt((1 / k) / (1 / k + r))
    shift = d.mean() * (1 - scale)  # same spread, mean scaled: t scales by `scale`
    corrected = sps.ttest_1samp(d - shift, 0.0)
    out = stats.corrected_resampled_ttest(d, n_train=12, n_test=3)
    np.testing.assert_allclose((out["t"], out["p_value"]),
                               (corrected.statistic, corrected.pvalue), rtol=1e-9)


@pytest.mark.parametrize("differences, reason", [
    ([0.05], "one fold"),
    ([0.0, 0.0, 0.0], "the same figure in every fold"),
    ([0.25, 0.25, 0.25], "same amount"),
    # a + 0.1 - a per fold: 0.1 up to rounding (5e-17), which gave t = 6e15, p = 5e-63
    (list(np.subtract(np.array([0.3, 0.55, 0.7, 0.35, 0.9]) + 0.1,
                      [0.3, 0.55, 0.7, 0.35, 0.9])), "same amount")])
def test_an_undefined_corrected_resampled_ttest_is_none_with_its_reason(differences, reason):
    out = stats.corrected_resampled_ttest(differences, n_train=8, n_test=2)
    assert out["p_value"] is None and out["t"] is None, out
    assert reason in out["reason"]
    assert out["folds"] == len(differences)
    assert out["mean_difference"] == pytest.approx(np.mean(differences))


def test_one_test_clip_has_no_bootstrap_interval_and_says_why():
    out = stats.metric_intervals(np.array([1]), np.array([[0.2, 0.8]]), seed=0, resamples=50)
    np.testing.assert_allclose(out["accuracy_ci"], proportion_confint(1, 1, method="wilson"))
    for key in ("macro_precision", "macro_recall", "macro_f1", "macro_auc"):
        assert all(np.isnan(out[f"{key}_ci"]))
    assert "fewer than two test clips" in out["intervals_reason"]
    assert stats.metric_intervals(np.array([0, 1]), np.array([[0.6, 0.4], [0.3, 0.7]]),
                                  seed=0, resamples=50)["intervals_reason"] is None


def test_the_paired_f1_difference_counts_every_class_of_the_task():
    """Class 4 of 5 never occurs: results.json's macro F1 (sklearn with labels=) counts it
    as 0 for both runs, so the difference is a fifth smaller than over the four present;
    the paired delta is that difference, and resampled the same way."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 4, 60)
    a = np.where(rng.random(60) < 0.6, labels, (labels + 1) % 4)
    b = np.where(rng.random(60) < 0.8, labels, (labels + 1) % 4)
    out = stats.paired_deltas(labels, a, b, 5, seed=0, resamples=300)
    task = dict(average="macro", labels=range(5), zero_division=0)
    present = dict(average="macro", labels=range(4), zero_division=0)
    delta = skm.f1_score(labels, b, **task) - skm.f1_score(labels, a, **task)
    assert out["delta_macro_f1"] == pytest.approx(delta)
    assert delta == pytest.approx(0.8 * (skm.f1_score(labels, b, **present)
                                         - skm.f1_score(labels, a, **present)))
    f1 = _macro("macro_f1", 5, over="task")
    np.testing.assert_allclose((out["delta_f1_low"], out["delta_f1_high"]), _scipy_interval(
        (labels, a, b), lambda y, p, q, axis=-1: f1(y, q, axis) - f1(y, p, axis), seed=0,
        resamples=300), rtol=1e-12)
