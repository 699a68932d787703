"""The study's figures from labels and probabilities, on scikit-learn, plus the two
things it lacks: clip-level voting over segments and the report dict runs write.

Conventions (scikit-learn's): macro averages are the unweighted mean over every class
of the task (`labels=range(num_classes)`), a class never predicted has precision 0 and
one never present recall 0 (`zero_division=0`); a class with no positive or no negative
example has no ROC curve and is left out of the macro AUC, and named.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np


def roc_auc(labels, probabilities: np.ndarray) -> Dict:
    """One-vs-rest ROC curve (every threshold kept) and AUC per class, and their macro
    mean over the classes where both outcomes occur."""
    from sklearn import metrics as skm  # here: launch.py's config errors need no sklearn

    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=np.float64)
    curves, aucs, undefined = [], [], []
    for c in range(probabilities.shape[1]):
        positive = labels == c
        if positive.all() or not positive.any():
            curves.append(None)
            aucs.append(float("nan"))
            undefined.append(c)
            continue
        fpr, tpr, _ = skm.roc_curve(positive, probabilities[:, c], drop_intermediate=False)
        curves.append((fpr, tpr))
        aucs.append(float(skm.auc(fpr, tpr)))  # the area under that curve: one sort, not two
    defined = [a for a in aucs if not np.isnan(a)]
    return {"curves": curves, "auc": np.asarray(aucs),
            "macro_auc": float(np.mean(defined)) if defined else float("nan"),
            "undefined_classes": undefined}


CLIP_MEANS = ("probability", "log_probability")


def vote(probabilities: np.ndarray, clip_index: np.ndarray, labels: np.ndarray, *,
         mean: str = "probability"):
    """Clip-level results from segment-level ones. `mean='probability'` averages each
    clip's segment probabilities (the study's); 'log_probability' averages their logs and
    renormalises (a normalised geometric mean: windows multiply as independent evidence,
    so one window that rules a class out weighs more than under the arithmetic mean).
    Returns (clip ids in first-seen order, probabilities, labels)."""
    if mean not in CLIP_MEANS:
        raise ValueError(f"mean must be one of {CLIP_MEANS}, got {mean!r}")
    clips, first = np.unique(clip_index, return_index=True)
    order = np.argsort(first)
    clips, first = clips[order], first[order]
    values = np.asarray(probabilities, dtype=np.float64)
    if mean == "log_probability":
        values = np.log(np.maximum(values, np.finfo(np.float64).tiny))
    sums = np.zeros((clips.size, values.shape[1]))
    position = {c: i for i, c in enumerate(clips)}
    rows = np.array([position[c] for c in clip_index])
    np.add.at(sums, rows, values)
    counts = np.bincount(rows, minlength=clips.size)[:, None]
    averaged = sums / counts
    if mean == "log_probability":
        averaged = np.exp(averaged - averaged.max(axis=1, keepdims=True))
        averaged /= averaged.sum(axis=1, keepdims=True)
    return clips, averaged, np.asarray(labels)[first]


def classification_report(labels, probabilities: np.ndarray,
                          class_names: Optional[Sequence[str]] = None) -> Dict:
    """Every figure the study reports, from true labels and predicted probabilities."""
    from sklearn import metrics as skm  # here: launch.py's config errors need no sklearn

    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities)
    num_classes = probabilities.shape[1]
    classes = list(range(num_classes))
    predictions = probabilities.argmax(axis=1)
    confusion = skm.confusion_matrix(labels, predictions, labels=classes)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predictions, labels=classes, zero_division=0)
    per_class = {"precision": precision, "recall": recall, "f1": f1,
                 "support": support.astype(np.float64)}
    roc = roc_auc(labels, probabilities)
    names: List[str] = list(class_names or [str(c) for c in range(num_classes)])
    return {
        "n": int(labels.size),
        "accuracy": float(skm.accuracy_score(labels, predictions)) if labels.size
        else float("nan"),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "macro_auc": roc["macro_auc"],
        "auc_undefined_for": [names[c] for c in roc["undefined_classes"]],
        "per_class": {names[c]: {k: float(per_class[k][c]) for k in per_class}
                      | {"auc": float(roc["auc"][c])} for c in range(num_classes)},
        "confusion": confusion.tolist(),
        "class_names": names,
        "roc_curves": roc["curves"],
    }
