"""Two classifiers on the same test clips, compared once: what `python -m jaxgenre.compare`
prints for two runs and what the grid's comparisons.csv holds for every pair of cells.

Each classifier's accuracy and macro F1 are results.json's (`metrics`: the mean over every
class of the task), so a comparison never disagrees with the runs it compares. The
differences b − a of those figures come with paired BCa bootstrap intervals of the same
statistics (`stats.paired_deltas`: the same resampled clips for both), McNemar's exact
test counts the clips only one gets right, and the minimum detectable difference says
what the test could have seen.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
from sklearn import metrics as skm

from jaxgenre.results import stats

NO_MDD = "too few clips where the runs differ: no difference is detected with that power"


def macro_f1(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    """results.json's macro F1: every class of the task, 0 for a class without a figure."""
    return float(skm.f1_score(labels, predictions, labels=list(range(num_classes)),
                              average="macro", zero_division=0))


def compare_predictions(labels, predictions_a, predictions_b, num_classes: int, *,
                        seed: int = 0) -> Dict:
    """{a_accuracy, b_accuracy, a_macro_f1, b_macro_f1, a_only, b_only, p_value,
    delta_accuracy, delta_low, delta_high, delta_macro_f1, delta_f1_low, delta_f1_high,
    discordant_share, minimum_detectable_difference} of b against a."""
    labels, a, b = (np.asarray(x) for x in (labels, predictions_a, predictions_b))
    n = labels.size
    out = {"a_accuracy": float(np.mean(a == labels)), "b_accuracy": float(np.mean(b == labels)),
           "a_macro_f1": macro_f1(labels, a, num_classes),
           "b_macro_f1": macro_f1(labels, b, num_classes)}
    out.update(stats.mcnemar(a == labels, b == labels))
    out.update(stats.paired_deltas(labels, a, b, num_classes, seed=seed))
    out["discordant_share"] = (out["a_only"] + out["b_only"]) / n
    out["minimum_detectable_difference"] = stats.minimum_detectable_difference(
        n, out["discordant_share"])
    return out
