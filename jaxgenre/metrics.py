"""Classification metrics in numpy: accuracy, confusion matrix, per-class and macro
precision / recall / F1, one-vs-rest ROC curves and AUC, and clip-level voting.

Definitions follow scikit-learn's (tests compare against it): macro averages are the
unweighted mean over classes; a class never predicted has precision 0 and a class
never present has recall 0 (sklearn's zero_division=0); a class with no positive or no
negative example has no ROC curve and is left out of the macro AUC (and named).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """`[true, predicted]` counts."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return np.bincount(labels * num_classes + predictions,
                       minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def precision_recall_f1(confusion: np.ndarray) -> Dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix."""
    tp = np.diag(confusion).astype(np.float64)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


def roc_curve(positive: np.ndarray, scores: np.ndarray):
    """(fpr, tpr, thresholds) for one binary problem, every distinct threshold kept,
    starting at (0, 0) with threshold +inf — scikit-learn's drop_intermediate=False."""
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order].astype(np.float64)
    last_of_each = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(positive)[last_of_each]
    fps = (1 + last_of_each) - tps
    tpr = np.r_[0.0, tps / max(tps[-1], 1)]
    fpr = np.r_[0.0, fps / max(fps[-1], 1)]
    return fpr, tpr, np.r_[np.inf, scores[last_of_each]]


def roc_auc(labels, probabilities: np.ndarray) -> Dict:
    """One-vs-rest ROC per class and AUCs (trapezoid rule), plus their macro mean."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=np.float64)
    curves, aucs, undefined = [], [], []
    for c in range(probabilities.shape[1]):
        positive = labels == c
        if positive.all() or not positive.any():
            curves.append(None)
            aucs.append(float("nan"))
            undefined.append(c)
            continue
        fpr, tpr, _ = roc_curve(positive, probabilities[:, c])
        curves.append((fpr, tpr))
        aucs.append(float(np.trapezoid(tpr, fpr)))
    defined = [a for a in aucs if not np.isnan(a)]
    return {"curves": curves, "auc": np.asarray(aucs),
            "macro_auc": float(np.mean(defined)) if defined else float("nan"),
            "undefined_classes": undefined}


def vote(probabilities: np.ndarray, clip_index: np.ndarray, labels: np.ndarray):
    """Clip-level results from segment-level ones: average each clip's segment
    probabilities. Returns (clip ids in first-seen order, probabilities, labels)."""
    clips, first = np.unique(clip_index, return_index=True)
    order = np.argsort(first)
    clips, first = clips[order], first[order]
    sums = np.zeros((clips.size, probabilities.shape[1]))
    position = {c: i for i, c in enumerate(clips)}
    rows = np.array([position[c] for c in clip_index])
    np.add.at(sums, rows, probabilities)
    counts = np.bincount(rows, minlength=clips.size)[:, None]
    return clips, sums / counts, np.asarray(labels)[first]


def classification_report(labels, probabilities: np.ndarray,
                          class_names: Optional[Sequence[str]] = None) -> Dict:
    """Every figure the study reports, from true labels and predicted probabilities."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    num_classes = probabilities.shape[1]
    predictions = probabilities.argmax(axis=1)
    confusion = confusion_matrix(labels, predictions, num_classes)
    per_class = precision_recall_f1(confusion)
    roc = roc_auc(labels, probabilities)
    names: List[str] = list(class_names or [str(c) for c in range(num_classes)])
    return {
        "n": int(labels.size),
        "accuracy": float(np.mean(predictions == labels)) if labels.size else float("nan"),
        "macro_precision": float(per_class["precision"].mean()),
        "macro_recall": float(per_class["recall"].mean()),
        "macro_f1": float(per_class["f1"].mean()),
        "macro_auc": roc["macro_auc"],
        "auc_undefined_for": [names[c] for c in roc["undefined_classes"]],
        "per_class": {names[c]: {k: float(per_class[k][c]) for k in per_class}
                      | {"auc": float(roc["auc"][c])} for c in range(num_classes)},
        "confusion": confusion.tolist(),
        "class_names": names,
        "roc_curves": roc["curves"],
    }
