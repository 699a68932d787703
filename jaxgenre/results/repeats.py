"""Several runs of one cell (k-fold's folds, several seeds) summed up: each test
metric's mean, std and t interval of the mean over the runs, at clip and segment level."""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from jaxgenre.results import registry, stats


def summary(runs: List[Dict], name: str) -> Dict:
    """Each test metric's mean, std and t interval of the mean (`<metric>_ci`) over `runs`
    (their results.json), the values under `name`, and the summed confusion matrix, at
    clip and segment level."""
    keys = registry.KEYS
    out = {}
    for level in ("clips", "segments"):
        # An undefined figure (an AUC without positives) is null in results.json: NaN here,
        # so the summary's mean is undefined (null) too rather than a TypeError.
        values = {k: np.asarray([r["test"][level][k] for r in runs], dtype=np.float64)
                  for k in keys}
        out[level] = {k: float(np.mean(v)) for k, v in values.items()}
        out[level].update({f"{k}_std": float(np.std(v)) for k, v in values.items()})
        out[level].update({f"{k}_ci": stats.t_interval(v) for k, v in values.items()})
        out[level][name] = {k: v.tolist() for k, v in values.items()}
        out[level]["confusion"] = np.sum([r["test"][level]["confusion"] for r in runs],
                                             axis=0).tolist()
        out[level]["class_names"] = runs[0]["test"][level]["class_names"]
    return out
