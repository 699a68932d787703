"""Ensembles of finished runs, in one command:

    python -m jaxgenre.ensemble --workdir=runs/feature_ensemble \\
        runs/grid/resnet18_mel runs/grid/resnet18_spec runs/grid/resnet18_mfcc

averages the members' per-clip test probabilities (each run's `test_predictions.csv`,
`clip_table`) — the study's planned feature ensemble (mel + spectrogram + MFCC, and the
waveform), or a seed ensemble of one cell — and reports the result like a run: the test
table (beside each member's figure), results.json, results.md (one row per member and
one for the ensemble, the grid's columns), test_predictions.csv, the confusion matrix
and ROC curves. The members must have tested the same clips with the same classes (one
split: same data, seed and split settings); otherwise it stops, naming the run that
differs. Exit status 0, or 2 with one line on a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from jaxgenre import errors
from jaxgenre.results import clip_table, metrics, run_files, stats
from jaxgenre.results import tables as tables_lib
from jaxgenre.results import writer as writer_lib
from jaxgenre.errors import UserError


def combine(tables: Sequence[clip_table.ClipTable], names: Sequence[str], *,
            mean: str = "probability") -> clip_table.ClipTable:
    """One table: each clip's probabilities averaged over `tables` ('probability': the
    arithmetic mean; 'log_probability': the normalised geometric mean, as
    `metrics.vote`), in the first table's clip order. `names` name the tables in errors."""
    if not tables:
        raise UserError("an ensemble needs at least one run")
    first = tables[0]
    # (clips, members, classes)
    stacked = np.stack(clip_table.aligned_probabilities(tables, names), axis=1)
    n_clips, n_members, _ = stacked.shape
    _, probabilities, _ = metrics.vote(stacked.reshape(n_clips * n_members, -1),
                                       np.repeat(np.arange(n_clips), n_members),
                                       np.repeat(first.labels, n_members), mean=mean)
    return clip_table.ClipTable(first.clip_ids, first.labels, probabilities, first.class_names)


def _member(run_dir: str) -> Dict:
    """A member's model, feature, data and clip-level test figures from its results.json;
    a missing or damaged file is a `UserError` naming it."""
    path = run_files.results_path(run_dir)
    results = run_files.read_results(run_dir)
    clips = results.get("test")
    clips = clips.get("clips") if isinstance(clips, dict) else None
    if not isinstance(clips, dict):
        raise UserError(f"'{path}' has no test.clips figures: {run_dir} did not finish "
                        f"testing or the file was edited; run it again (it resumes)")
    return {"run": run_dir, "model": results.get("model", "?"),
            "feature": results.get("feature", "?"), "data": results.get("data", "?"),
            "clips": clips}


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """What an ensemble reports; `writer.RunWriter.ensemble` writes and prints it."""
    results: Dict  # its results.json
    table: clip_table.ClipTable  # its test_predictions.csv
    report: Dict  # the clip-level report, ROC curves included (the figures)
    lines: List[str]  # its results.md
    title: str  # the figures' title


def build(run_dirs: Sequence[str], *, mean: str = "probability") -> Ensemble:
    """The ensemble of `run_dirs` (see the module docstring); writes nothing."""
    if mean not in metrics.CLIP_MEANS:
        raise UserError(f"--mean must be one of {', '.join(metrics.CLIP_MEANS)}; got {mean!r}")
    members = [_member(d) for d in run_dirs]
    tables = [clip_table.read(os.path.join(d, clip_table.FILE_NAME)) for d in run_dirs]
    combined = combine(tables, list(run_dirs), mean=mean)
    report = metrics.classification_report(combined.labels, combined.probabilities,
                                           combined.class_names)
    report.update(stats.metric_intervals(combined.labels, combined.probabilities, seed=0))
    features = "+".join(dict.fromkeys(m["feature"] for m in members))
    results = {"model": "ensemble", "feature": features, "data": members[0]["data"],
               "mean": mean, "members": [{k: m[k] for k in ("run", "model", "feature")}
                                         for m in members],
               "test": {"clips": {k: v for k, v in report.items() if k != "roc_curves"}}}
    return Ensemble(results=results, table=combined, report=report,
                    lines=tables_lib.ensemble_table(members, report, features),
                    title=f"ensemble of {len(members)} ({features})")


def run_ensemble(run_dirs: Sequence[str], workdir: str, *, mean: str = "probability",
                 plots_on: bool = True, results_name: str = run_files.RESULTS,
                 files: Optional[bool] = None) -> Dict:
    """Combines `run_dirs` into `workdir` through the run writer; returns what it writes
    to `results_name` (a several-seed cell keeps results.json for its summary). `files`:
    whether this process writes them (None: process 0 of a multi-process run)."""
    ensemble = build(run_dirs, mean=mean)
    writer_lib.RunWriter(workdir, files=files).ensemble(ensemble, results_name=results_name,
                                           plots_on=plots_on)
    return ensemble.results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxgenre.ensemble",
                                     description="Average the test probabilities of runs.")
    parser.add_argument("--workdir", required=True, help="folder for the ensemble's outputs")
    parser.add_argument("--mean", default="probability", choices=metrics.CLIP_MEANS)
    parser.add_argument("--no_plots", action="store_true")
    parser.add_argument("runs", nargs="+", help="folders of finished runs")
    args = parser.parse_args(argv)
    try:
        # One process, and no accelerator to start: it writes its files itself.
        run_ensemble(args.runs, args.workdir, mean=args.mean, plots_on=not args.no_plots,
                     files=True)
    except UserError as e:
        return errors.report(e)
    return 0

