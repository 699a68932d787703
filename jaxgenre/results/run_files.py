"""A run's result files, read and written in one place: `results.json` (a run's, a
k-fold's or several seeds' summary, an ensemble's) through `strict_json`, so every
writer writes it whole (never half a file after a kill) and every reader refuses a
missing or damaged one in one line naming it and the fix. `test_predictions.csv` has its
own reader and writer (`clip_table`), `run.json` is read where predict rebuilds a model.
"""

from __future__ import annotations

import os
from typing import Dict

from jaxgenre import strict_json
from jaxgenre.errors import UserError

RESULTS = "results.json"


def results_path(run_dir: str) -> str:
    return os.path.join(run_dir, RESULTS)


def has_results(run_dir: str) -> bool:
    """Whether `run_dir` is a finished run (testing wrote its results.json)."""
    return os.path.isfile(results_path(run_dir))


def read_results(run_dir: str, *, optional: bool = False) -> Dict:
    """`<run_dir>/results.json`: {} when `optional` and absent; otherwise a missing,
    truncated or non-object file is a `UserError` naming it."""
    path = results_path(run_dir)
    if not os.path.isfile(path):
        if optional:
            return {}
        raise UserError(f"'{path}' not found: {run_dir} is not a finished run "
                        f"(`python launch.py` writes it when testing ends)")
    return strict_json.load(path, what=f"{run_dir}'s {RESULTS}")


def write_results(run_dir: str, results: Dict) -> str:
    """`results` as `<run_dir>/results.json` (NaN as null, written whole); its path."""
    path = results_path(run_dir)
    strict_json.write(path, results, indent=2)
    return path

