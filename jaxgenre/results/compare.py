"""Two finished runs, compared on the clips both tested:

    python -m jaxgenre.compare runs/resnet_mel runs/spectralcnn_mel [--json=compare.json]

reads each run's `test_predictions.csv`, and prints each run's accuracy and macro F1 with
95 % intervals, the clips only one of them gets right (`a_only`, `b_only`), the exact
McNemar p-value, the difference b − a in accuracy and macro F1 with paired bootstrap
intervals, and the minimum detectable difference at this test size (power 0.8, α 0.05),
so that "not significant" can be read for what it is (`jaxgenre.results.stats`); for two k-fold
runs also Nadeau & Bengio's corrected resampled t-test on the per-fold accuracies. `--json`
writes the same figures (at least `a_only`, `b_only`, `p_value`, `delta_accuracy`,
`delta_low`, `delta_high`), as strict JSON: a figure that is undefined is null with a
`..._reason` or `reason` beside it. Runs that tested other clips, and damaged run files
(a header-only test_predictions.csv, a cut-short results.json), are refused in one line
naming the run or file. Exit status 0, or 2 with one line on a usage error.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from jaxgenre import errors, strict_json
from jaxgenre.results import clip_table, paired, run_files, stats
from jaxgenre.results import tables as tables_lib
from jaxgenre.errors import UserError

RESULTS = run_files.RESULTS


def compare_tables(a: clip_table.ClipTable, b: clip_table.ClipTable, *, names=("a", "b"),
                   seed: int = 0) -> Dict:
    """Every figure of the comparison of `b` against `a` (see the module docstring)."""
    probs_a, probs_b = clip_table.aligned_probabilities([a, b], list(names))
    labels, n = a.labels, a.labels.size
    if n == 0:
        raise UserError(f"{names[0]} has no test clips: nothing to compare")
    pred_a, pred_b = probs_a.argmax(1), probs_b.argmax(1)
    pair = paired.compare_predictions(labels, pred_a, pred_b, len(a.class_names), seed=seed)
    out = {"a": names[0], "b": names[1], "clips": int(n)}
    for tag, preds in (("a", pred_a), ("b", pred_b)):
        out[f"{tag}_accuracy"] = pair[f"{tag}_accuracy"]
        out[f"{tag}_accuracy_ci"] = stats.wilson_interval(int(np.sum(preds == labels)), n)
        out[f"{tag}_macro_f1"] = pair[f"{tag}_macro_f1"]
    out.update({k: v for k, v in pair.items() if k not in out})
    out["minimum_detectable_difference_reason"] = (
        paired.NO_MDD if out["minimum_detectable_difference"] is None else None)
    return out


def _node(results: Dict, keys: Sequence[str], source: str):
    """results[k0][k1]...; None where a key is missing; a `UserError` naming `source` and
    the key where a level is not a JSON object."""
    node = results
    for depth, key in enumerate(keys):
        if node is None:
            return None
        if not isinstance(node, dict):
            raise UserError(f"'{source}': {'.'.join(keys[:depth]) or 'the file'} is not a JSON "
                            f"object: the file was edited; run the comparison on the run's "
                            f"own {RESULTS}")
        node = node.get(key)
    return node


def _numbers(value, source: str, key: str, *, positive: bool = False) -> List:
    """`value` checked as a list of finite numbers (None entries kept: an unknown size),
    > 0 if `positive`; otherwise a `UserError` naming `source` and `key`."""
    ok = isinstance(value, list) and all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                      and math.isfinite(v) and (v > 0 or not positive)) for v in value)
    if not ok:
        raise UserError(f"'{source}': {key} must be a list of "
                        f"{'positive ' if positive else ''}numbers; got {str(value)[:60]}: "
                        f"the file was edited; use the run's own {RESULTS}")
    return value


def cross_validated(results_a: Dict, results_b: Dict,
                    sources: Sequence[str] = (f"a/{RESULTS}", f"b/{RESULTS}")
                    ) -> Optional[Dict]:
    """Nadeau & Bengio's corrected resampled t-test on the per-fold accuracies of two
    k-fold runs (their results.json, read from `sources`, named in errors) over the same
    folds; None if they are not both k-fold runs. Both k-fold but not comparable (other
    numbers of folds, unknown fold sizes): the test's fields None and `reason` saying
    why. A per-fold figure or fold size that is not a list of numbers (sizes: positive)
    is a `UserError` naming the file and key."""
    key = ("test", "clips", "per_fold", "accuracy")
    folds = [_node(r, key, src) for r, src in zip((results_a, results_b), sources)]
    if any(f is None for f in folds):
        return None
    folds = [_numbers(f, src, ".".join(key)) for f, src in zip(folds, sources)]
    undefined = {"mean_difference": None, "t": None, "p_value": None, "folds": None}
    if len(folds[0]) != len(folds[1]):
        return {**undefined, "reason": f"the runs have {len(folds[0])} and {len(folds[1])} "
                                       f"folds: the test pairs the same folds"}
    if None in folds[0] or None in folds[1]:
        return {**undefined, "reason": "a fold's accuracy is unknown"}
    sizes = [[_numbers(_node(r, ("clips_per_fold", part), src) or [], src,
                       f"clips_per_fold.{part}", positive=True) for part in ("train", "test")]
             for r, src in zip((results_a, results_b), sources)]
    if any(not s or None in s for s in sizes[0]):
        return {**undefined, "reason": f"{sources[0]} does not say how many clips each "
                                       f"fold trained and tested on (clips_per_fold)"}
    if all(sizes[1]) and sizes[1] != sizes[0]:
        return {**undefined, "reason": "the runs' folds have other sizes: not the same folds"}
    sizes = sizes[0]
    return stats.corrected_resampled_ttest(np.subtract(folds[1], folds[0]),
                                           n_train=float(np.mean(sizes[0])),
                                           n_test=float(np.mean(sizes[1])))


def _results(run: str) -> Dict:
    """The run's results.json ({} if it has none: only k-fold figures come from it); a
    damaged one is a `UserError` naming it."""
    return run_files.read_results(run, optional=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxgenre.compare",
                                     description="Compare two finished runs on their test clips.")
    parser.add_argument("run_a")
    parser.add_argument("run_b")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's seed")
    args = parser.parse_args(argv)
    try:
        tables = [clip_table.read(os.path.join(run, clip_table.FILE_NAME))
                  for run in (args.run_a, args.run_b)]
        result = compare_tables(*tables, names=(args.run_a, args.run_b), seed=args.seed)
        runs = (args.run_a, args.run_b)
        result["cross_validated"] = cross_validated(
            *[_results(r) for r in runs], sources=[os.path.join(r, RESULTS) for r in runs])
    except UserError as e:
        return errors.report(e)
    print("\n".join(tables_lib.comparison_lines(result)))
    if args.json:
        try:
            text = strict_json.dumps(result, indent=2)
            with open(args.json, "w") as f:
                f.write(text)
        except OSError as e:
            return errors.report(UserError(f"cannot write --json={args.json}: {e}"))
    return 0

