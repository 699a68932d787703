"""Which epoch's weights a run keeps as its best: `config.train.select`.

The study's rule ("accuracy") keeps the first epoch that reaches the highest validation
clip accuracy. On a small validation set that saturates (31 clips all right within a
few epochs, then bouncing), it keeps an early epoch and throws away the rest of
training, the decayed end of a schedule included. The other rules:

- "accuracy_loss": the highest validation accuracy, ties broken by the lower validation
  log-loss (a later epoch that is as accurate and more confident wins);
- "loss": the lowest validation log-loss (clip probabilities, scikit-learn's `log_loss`);
- "last": the last epoch.

A rule is a key per epoch, compared as a tuple (greater is better); an epoch that
does not beat the best key so far is not saved as best. Keys are plain lists in the
checkpoint's JSON record, so a resumed run goes on comparing against them.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

RULES = ("accuracy", "accuracy_loss", "loss", "last")


def clip_log_loss(labels: Sequence[int], probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood of the clips' true classes (scikit-learn's
    `log_loss`, probabilities clipped as it clips them). Each row is renormalised in
    float64 first: a float32 softmax sums to 1 within ~1e-7, outside the 1.5e-8 that
    scikit-learn 1.9 accepts before warning on every epoch."""
    from sklearn import metrics as sk_metrics  # here: config errors need no sklearn

    probabilities = np.asarray(probabilities, np.float64)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    return float(sk_metrics.log_loss(np.asarray(labels), probabilities,
                                     labels=np.arange(probabilities.shape[1])))


def key(rule: str, *, accuracy: float, loss: Optional[float]) -> Tuple[float, ...]:
    """The epoch's key under `rule` (greater is better). An undefined loss (no
    validation clips, a diverged model) counts as infinitely bad."""
    if rule not in RULES:
        raise ValueError(f"train.select must be one of {', '.join(RULES)}; got {rule!r}")
    bad = loss is None or not math.isfinite(loss)
    neg_loss = -math.inf if bad else -float(loss)
    return {"accuracy": (float(accuracy),), "accuracy_loss": (float(accuracy), neg_loss),
            "loss": (neg_loss,), "last": ()}[rule]


def improves(rule: str, new: Tuple[float, ...], best: Optional[Sequence[float]]) -> bool:
    """Whether the epoch with key `new` replaces the best so far (key `best`, None when
    there is none yet): strictly greater, so ties keep the earlier epoch, as the study's
    rule does; under "last" every epoch replaces it."""
    if rule == "last" or best is None:
        return True
    best = tuple(-math.inf if b is None else float(b) for b in best)
    return tuple(new) > best


def stored(k: Tuple[float, ...]) -> list:
    """`k` as the JSON record holds it (an infinite loss as None)."""
    return [None if not math.isfinite(x) else x for x in k]
