"""How sure a test figure is, and whether two classifiers differ, on scipy.stats:

- accuracy: the Wilson score interval (`scipy.stats.binomtest(...).proportion_ci`);
- macro precision / recall / F1 / AUC: a bootstrap over test clips
  (`scipy.stats.bootstrap`, BCa, seeded; the percentile interval where BCa is undefined
  or leaves out the observed value);
- two classifiers on the same clips: exact McNemar (a two-sided binomial test on the
  clips only one of them gets right, `scipy.stats.binomtest`) and a paired bootstrap
  interval for the difference in accuracy and in macro F1;
- the minimum detectable difference in accuracy of such a paired comparison (power 0.8,
  two-sided α 0.05; Connor's 1987 sample size formula for McNemar's test, solved for
  the difference at the observed share of discordant clips);
- over k folds or seeds: a t interval of the mean, and for two cells under the same
  cross-validation Nadeau & Bengio's corrected resampled t-test (undefined, so None with
  a reason, for one fold or folds that all differ by the same amount).

Why by hand: macro precision / recall / F1 / AUC over thousands of resamples at once are
a few lines of numpy (sklearn's functions take one sample at a time, 2000 x 10 ROC
computations per run); the tests hold them to sklearn. The rest is scipy.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import optimize
from scipy import stats as sps

from jaxgenre.results import registry

CONFIDENCE = 0.95
RESAMPLES = 2000
Interval = Tuple[float, float]


def wilson_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The Wilson score interval of a proportion `correct / n` (NaNs when n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    ci = sps.binomtest(int(correct), int(n)).proportion_ci(confidence_level=confidence,
                                                           method="wilson")
    return float(ci.low), float(ci.high)


def macro_prf(labels: np.ndarray, predictions: np.ndarray, num_classes: int, *,
              over: str = "present") -> Dict[str, np.ndarray]:
    """Macro precision, recall and F1 over the last axis, for any leading axes (one
    value per resample), as sklearn computes them without `labels=`: the mean over the
    classes that occur among the labels or the predictions of that sample, 0 where a
    class's figure is undefined. On a test set holding every class this is
    `metrics`' convention (every class of the task); on a bootstrap resample a class
    that was merely not drawn is left out rather than counted as 0 — with one test
    clip per class, counting it dragged every resample far below the observed figure
    and the BCa interval collapsed to a point that excluded it. `over='task'`: the mean
    over every class of the task (results.json's), for a difference of two classifiers,
    where a class not drawn counts 0 for both and the difference is the one reported."""
    classes = np.arange(num_classes)
    is_label = labels[..., None, :] == classes[:, None]  # (..., classes, n)
    is_pred = predictions[..., None, :] == classes[:, None]
    tp = np.sum(is_label & is_pred, axis=-1).astype(np.float64)
    support, predicted = np.sum(is_label, axis=-1), np.sum(is_pred, axis=-1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(tp),
                   where=denominator > 0)
    occurs = (support > 0) | (predicted > 0)
    if over == "task":
        occurs = np.ones_like(occurs)
    count = np.maximum(occurs.sum(-1), 1)
    return {key: np.sum(value * occurs, -1) / count
            for key, value in (("macro_precision", precision), ("macro_recall", recall),
                               ("macro_f1", f1))}


def macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Mean one-vs-rest AUC over the classes with both outcomes (as `metrics.roc_auc`),
    for any leading axes: labels (..., n), probabilities (..., n, classes). Each class's
    AUC is the Mann-Whitney U of its scores (average ranks for ties) over n₊·n₋."""
    labels = np.asarray(labels)
    ranks = sps.rankdata(probabilities, axis=-2)  # ranks of the clips, per class
    positive = labels[..., None] == np.arange(probabilities.shape[-1])  # (..., n, classes)
    n_pos = positive.sum(-2).astype(np.float64)
    n_neg = labels.shape[-1] - n_pos
    rank_sum = np.sum(ranks * positive, axis=-2)
    defined = (n_pos > 0) & (n_neg > 0)
    auc = np.divide(rank_sum - n_pos * (n_pos + 1) / 2, n_pos * n_neg,
                    out=np.zeros_like(rank_sum), where=defined)
    count = defined.sum(-1)
    return np.divide(np.sum(auc * defined, -1), count,
                     out=np.full(count.shape, np.nan), where=count > 0)


def bootstrap_interval(statistic, n: int, *, seed: int, confidence: float = CONFIDENCE,
                       resamples: int = RESAMPLES) -> Interval:
    """The BCa bootstrap interval of `statistic(index)` over `n` test clips, where
    `statistic` maps index arrays (..., n) to values (...): resampling clips (and, for a
    comparison, the same clips for both classifiers). The percentile interval where BCa
    is undefined or leaves out the observed value (its bias correction breaks down on
    a few clips of a very discrete statistic); an interval is widened to reach the
    observed value if it still leaves it out; (value, value) when every resample gives
    the same value."""
    import warnings

    index = np.arange(n)
    value = float(statistic(index[None])[0])

    def run(method):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sps.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = sps.bootstrap((index,), lambda i, axis=-1: statistic(np.moveaxis(i, axis, -1)),
                                   vectorized=True, method=method, n_resamples=resamples,
                                   batch=max(1, 2_000_000 // n),  # bounded memory on big sets
                                   confidence_level=confidence,
                                   random_state=np.random.default_rng(seed))
        return float(result.confidence_interval.low), float(result.confidence_interval.high)

    tolerance = 1e-9
    interval = None
    for method in ("BCa", "percentile"):
        low, high = run(method)
        if math.isnan(low) or math.isnan(high):
            continue
        interval = interval or (low, high)
        if low - tolerance <= value <= high + tolerance:
            return low, high
    if interval is None:
        return value, value
    return min(interval[0], value), max(interval[1], value)


def metric_intervals(labels, probabilities, *, seed: int = 0, confidence: float = CONFIDENCE,
                     resamples: int = RESAMPLES) -> Dict[str, Interval]:
    """`<metric>_ci` for accuracy (Wilson) and macro precision / recall / F1 / AUC (BCa
    bootstrap over test clips, seeded), and `intervals_reason`: None, or why some
    intervals are undefined (NaN in memory, null in results.json): fewer than two test
    clips leave nothing to resample, no clip at all no Wilson interval either."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predictions = probabilities.argmax(axis=1)
    num_classes = probabilities.shape[1]
    reason = None if labels.size >= 2 else (
        "fewer than two test clips: no bootstrap interval" if labels.size
        else "no test clips: no interval")
    out = {}
    for metric in registry.METRICS:
        key = metric.key
        if metric.interval == "wilson":  # accuracy: a proportion of the test clips
            out[f"{key}_ci"] = wilson_interval(int(np.sum(predictions == labels)),
                                               labels.size, confidence)
            out["intervals_reason"] = reason
            continue
        if labels.size < 2:
            out[f"{key}_ci"] = (float("nan"), float("nan"))
            continue
        if key == "macro_auc":
            statistic = lambda i: macro_auc(labels[i], probabilities[i])
        else:
            statistic = (lambda i, key=key:
                         macro_prf(labels[i], predictions[i], num_classes)[key])
        out[f"{key}_ci"] = bootstrap_interval(statistic, labels.size, seed=seed,
                                              confidence=confidence, resamples=resamples)
    return out


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> Dict:
    """Exact McNemar test: of the clips exactly one classifier gets right (`a_only`,
    `b_only`), is the split 50/50? Two-sided binomial p-value (1.0 without such clips)."""
    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    a_only, b_only = int(np.sum(correct_a & ~correct_b)), int(np.sum(correct_b & ~correct_a))
    p = sps.binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": float(p)}


def paired_deltas(labels, predictions_a, predictions_b, num_classes: int, *, seed: int = 0,
                  confidence: float = CONFIDENCE, resamples: int = RESAMPLES) -> Dict:
    """Accuracy and macro F1 (results.json's: over every class of the task) of b minus a,
    each with a paired (same resampled clips for both) BCa bootstrap interval of that
    same difference."""
    labels, a, b = (np.asarray(x) for x in (labels, predictions_a, predictions_b))
    f1 = lambda y, p: macro_prf(y, p, num_classes, over="task")["macro_f1"]
    statistics = {
        "accuracy": lambda i: np.mean(b[i] == labels[i], -1) - np.mean(a[i] == labels[i], -1),
        "f1": lambda i: f1(labels[i], b[i]) - f1(labels[i], a[i])}
    out = {}
    for name, statistic in statistics.items():
        value = float(statistic(np.arange(labels.size)[None])[0])
        low, high = bootstrap_interval(statistic, labels.size, seed=seed,
                                       confidence=confidence, resamples=resamples)
        suffix = "" if name == "accuracy" else "_f1"
        out.update({f"delta_{'accuracy' if name == 'accuracy' else 'macro_f1'}": value,
                    f"delta{suffix}_low": low, f"delta{suffix}_high": high})
    return out


def minimum_detectable_difference(n: int, discordant_share: float, *, alpha: float = 0.05,
                                  power: float = 0.8) -> Optional[float]:
    """The smallest accuracy difference δ that McNemar's test on `n` paired clips detects
    with `power` at two-sided `alpha`, when a share `discordant_share` (ψ) of clips is
    right for one classifier only: Connor (1987),
    n = (z_{α/2}·√ψ + z_β·√(ψ − δ²))² / δ², solved for δ. None if no δ ≤ ψ is enough."""
    psi = float(discordant_share)
    if n < 1 or psi <= 0:
        return None
    z_a, z_b = sps.norm.ppf(1 - alpha / 2), sps.norm.ppf(power)
    needed = lambda d: (z_a * math.sqrt(psi) + z_b * math.sqrt(max(psi - d * d, 0.0))) ** 2 \
        / (d * d) - n
    high = min(psi, 1.0)  # |p10 - p01| <= p10 + p01
    if needed(high) > 0:
        return None
    return float(optimize.brentq(needed, 1e-9, high))


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The t interval of the mean of `values` (e.g. one metric over k folds or seeds):
    mean ± t_{k-1} · s / √k, s with k - 1 degrees of freedom; NaNs for fewer than 2."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        return float("nan"), float("nan")
    half = sps.t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


# A spread of the per-fold differences at most this share of their size is float
# rounding (a + 0.1 - a is 0.1 within ~1e-16), not variation between folds.
ROUNDING = 1e-12


def corrected_resampled_ttest(differences: Sequence[float], *, n_train: float,
                              n_test: float) -> Dict:
    """Nadeau & Bengio's (2003) corrected resampled t-test of k per-fold differences
    between two cells trained and tested on the same folds: the variance of the mean
    difference is (1/k + n_test/n_train) · s² instead of s²/k, because the folds' training
    sets overlap; t with k - 1 degrees of freedom, two-sided p.

    Returns mean_difference, t, p_value, folds and reason. The test is undefined — t
    and p_value None, `reason` saying why (None when defined) — for fewer than two
    folds, and when every fold differs by the same amount: s = 0, or s within float
    rounding of the differences' size (s ≤ ROUNDING · max |d|). There t would be
    ±inf or a rounding artefact (p = 0, or 1e-60 from noise), not evidence."""
    if not n_train > 0 or not n_test >= 0:
        raise ValueError(f"n_train must be > 0 and n_test >= 0; got {n_train}, {n_test}")
    d = np.asarray(differences, dtype=np.float64)
    k = d.size
    out = {"mean_difference": float(d.mean()) if k else None, "t": None, "p_value": None,
           "folds": k, "reason": None}
    if k < 2:
        out["reason"] = ("one fold: the test needs at least two folds" if k == 1
                         else "no folds: the test needs at least two")
        return out
    spread = float(d.std(ddof=1))
    size = float(np.max(np.abs(d)))
    if size == 0 or spread <= ROUNDING * size:
        out["reason"] = ("every fold's difference is 0 (the same figure in every fold): "
                         "the test is undefined" if size == 0 else
                         "all folds differ by the same amount (zero variance between "
                         "folds): the test is undefined")
        return out
    variance = (1 / k + n_test / n_train) * spread ** 2
    t = float(d.mean() / math.sqrt(variance))
    out.update(t=t, p_value=float(2 * sps.t.sf(abs(t), k - 1)))
    return out
