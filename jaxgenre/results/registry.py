"""The test metrics, listed once: their results.json keys, their labels in tables and
figures, how their interval is made, and whether the study's tables report them.

Every consumer reads this list (the study's tables, the run's printed table, the interval
figure, `stats.metric_intervals`, the k-fold / seed summaries, the ensemble's table),
where each had its own copy, in two orders (issue 23, item 2). `metrics.report` computes
them, with scikit-learn.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class Metric:
    key: str  # the key in a report and in results.json's test.<level>
    label: str  # its column / axis label
    interval: str  # 'wilson' (a proportion) or 'bootstrap' (BCa over test clips)
    in_study: bool  # the study's tables 1-3 report it


METRICS: Tuple[Metric, ...] = (
    Metric("accuracy", "accuracy", "wilson", True),
    Metric("macro_precision", "precision", "bootstrap", True),
    Metric("macro_recall", "recall", "bootstrap", True),
    Metric("macro_f1", "F1", "bootstrap", True),
    Metric("macro_auc", "macro AUC", "bootstrap", False),
)
STUDY_METRICS: Tuple[Metric, ...] = tuple(m for m in METRICS if m.in_study)
KEYS: Tuple[str, ...] = tuple(m.key for m in METRICS)
