"""Two finished runs, compared on the clips both tested:

    python -m jaxgenre.compare runs/resnet_mel runs/spectralcnn_mel [--json=compare.json]

reads each run's `test_predictions.csv`, and prints each run's accuracy and macro F1 with
95 % intervals, the clips only one of them gets right (`a_only`, `b_only`), the exact
McNemar p-value, the difference b − a in accuracy and macro F1 with paired bootstrap
intervals, and the minimum detectable difference at this test size (power 0.8, α 0.05),
so that "not significant" can be read for what it is (`jaxgenre.stats`); for two k-fold
runs also Nadeau & Bengio's corrected resampled t-test on the per-fold accuracies. `--json`
writes the same figures (at least `a_only`, `b_only`, `p_value`, `delta_accuracy`,
`delta_low`, `delta_high`). Runs that tested other clips are refused, naming the run.
Exit status 0, or 2 with one line on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional

import numpy as np

from jaxgenre import clip_table, errors, stats
from jaxgenre.errors import UserError


def compare_tables(a: clip_table.ClipTable, b: clip_table.ClipTable, *, names=("a", "b"),
                   seed: int = 0) -> Dict:
    """Every figure of the comparison of `b` against `a` (see the module docstring)."""
    probs_a, probs_b = clip_table.aligned_probabilities([a, b], list(names))
    labels, n = a.labels, a.labels.size
    pred_a, pred_b = probs_a.argmax(1), probs_b.argmax(1)
    classes = len(a.class_names)
    out = {"a": names[0], "b": names[1], "clips": int(n)}
    for tag, preds in (("a", pred_a), ("b", pred_b)):
        correct = int(np.sum(preds == labels))
        out[f"{tag}_accuracy"] = correct / n
        out[f"{tag}_accuracy_ci"] = stats.wilson_interval(correct, n)
        out[f"{tag}_macro_f1"] = float(stats.macro_prf(labels, preds, classes)["macro_f1"])
    out.update(stats.mcnemar(pred_a == labels, pred_b == labels))
    out.update(stats.paired_deltas(labels, pred_a, pred_b, classes, seed=seed))
    out["discordant_share"] = (out["a_only"] + out["b_only"]) / n
    out["minimum_detectable_difference"] = stats.minimum_detectable_difference(
        n, out["discordant_share"])
    return out


def cross_validated(results_a: Dict, results_b: Dict) -> Optional[Dict]:
    """Nadeau & Bengio's corrected resampled t-test on the per-fold accuracies of two
    k-fold runs (their results.json) over the same folds; None if they are not both
    k-fold runs with the same number of folds."""
    folds = [r.get("test", {}).get("clips", {}).get("per_fold", {}).get("accuracy")
             for r in (results_a, results_b)]
    if not all(folds) or len(folds[0]) != len(folds[1]):
        return None
    sizes = results_a.get("clips_per_fold", {})
    train, test = sizes.get("train") or [], sizes.get("test") or []
    if not train or None in train or None in test:
        return None
    return stats.corrected_resampled_ttest(np.subtract(folds[1], folds[0]),
                                           n_train=float(np.mean(train)),
                                           n_test=float(np.mean(test)))


def table_lines(result: Dict) -> List[str]:
    """The comparison as a few printed lines."""
    f = lambda v: "-" if v is None else f"{v:.4f}"
    ci = lambda pair: f"[{pair[0]:.4f}, {pair[1]:.4f}]"
    mdd = result["minimum_detectable_difference"]
    return [
        f"a: {result['a']}", f"b: {result['b']}", f"on {result['clips']} test clips:",
        f"  accuracy   a {f(result['a_accuracy'])} {ci(result['a_accuracy_ci'])}   "
        f"b {f(result['b_accuracy'])} {ci(result['b_accuracy_ci'])}",
        f"  macro F1   a {f(result['a_macro_f1'])}   b {f(result['b_macro_f1'])}",
        f"  b - a      accuracy {result['delta_accuracy']:+.4f} "
        f"{ci((result['delta_low'], result['delta_high']))}   macro F1 "
        f"{result['delta_macro_f1']:+.4f} "
        f"{ci((result['delta_f1_low'], result['delta_f1_high']))} (paired bootstrap, 95%)",
        f"  only a right: {result['a_only']} clips, only b right: {result['b_only']} clips; "
        f"exact McNemar p = {result['p_value']:.4g}",
        "  minimum detectable accuracy difference here (power 0.8, alpha 0.05): "
        + (f"{mdd:.4f}" if mdd is not None else "none: too few clips where the runs differ"),
    ] + ([f"  k-fold: corrected resampled t-test (Nadeau & Bengio) on per-fold accuracy: "
          f"mean b - a {cv['mean_difference']:+.4f}, t = {cv['t']:.3f}, p = {cv['p_value']:.4g} "
          f"({cv['folds']} folds)"] if (cv := result.get("cross_validated")) else [])


def _results(run: str) -> Dict:
    path = os.path.join(run, "results.json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


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
        result["cross_validated"] = cross_validated(*[_results(r) for r in (args.run_a,
                                                                            args.run_b)])
    except UserError as e:
        return errors.report(e)
    print("\n".join(table_lines(result)))
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=2)
        except OSError as e:
            return errors.report(UserError(f"cannot write --json={args.json}: {e}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
