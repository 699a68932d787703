"""The study's grid: every model x feature cell, trained and tested, tabulated beside
the study's tables 1-3; and k-fold cross-validation, one training run per fold.

`python launch.py --config=configs/study_grid.py --workdir=runs/grid` trains each cell
in `<workdir>/<model>_<feature>/` (a finished cell — one with results.json — is not run
again, so an interrupted grid resumes cell by cell), then writes `results.md`,
`results.csv` and `confusion_grid.png` into the workdir.
"""

from __future__ import annotations

import copy
import csv
import json
import os
from typing import Dict, List, Tuple

import numpy as np

from jaxgenre import plots, report

MODELS = ("spectral_cnn", "resnet18", "efficientnet_v2_s")
FEATURES = ("mel", "spec", "mfcc")
TITLES = {"mel": "Table 1. Mel-spectrogram input", "spec": "Table 2. Spectrogram input",
          "mfcc": "Table 3. MFCC input"}
NAMES = {"spectral_cnn": "SpectralCNN", "resnet18": "ResNet-18",
         "efficientnet_v2_s": "EfficientNetV2-S"}


def cell_config(config, model: str, feature: str):
    """`config` set to one study cell: that model and feature; ImageNet weights for the
    two ImageNet models (the study fine-tuned them), none for SpectralCNN."""
    cell = copy.deepcopy(config)
    with cell.unlocked():
        cell.model.name = model
        cell.model.pretrained = model != "spectral_cnn"
        cell.features.kind = feature
    return cell


def _results(run_dir: str, title: str, run) -> Dict:
    """`<run_dir>/results.json`, after calling `run()` to produce it unless it exists:
    how the grid and k-fold resume (a finished cell or fold is not run again)."""
    path = os.path.join(run_dir, "results.json")
    if not os.path.isfile(path):
        print(f"=== {title} ===")
        run()
    with open(path) as f:
        return json.load(f)


def run_experiment(config, workdir: str) -> None:
    """One training run, or — for `data.split='kfold'` with no `data.fold` — one run
    per fold and their mean ± std (`run_kfold`)."""
    from jaxgenre import train  # grids and folds are thin loops over training runs

    if config.data.split == "kfold" and config.data.fold is None:
        run_kfold(config, workdir)
    else:
        train.train_and_evaluate(config, workdir)


def run_kfold(config, workdir: str) -> Dict:
    """Trains fold 0 .. folds-1 in `<workdir>/fold_<k>/` (finished folds are kept) and
    writes `<workdir>/results.json` with every clip-level test metric's mean and std."""
    from jaxgenre import train

    def fold_config(fold):
        cfg = copy.deepcopy(config)
        with cfg.unlocked():
            cfg.data.fold = fold
        return cfg

    per_fold = []
    for fold in range(config.data.folds):
        fold_dir = os.path.join(workdir, f"fold_{fold}")
        per_fold.append(_results(
            fold_dir, f"fold {fold + 1} of {config.data.folds}",
            lambda: train.train_and_evaluate(fold_config(fold), fold_dir)))
    keys = [key for _, key in report.METRICS] + ["macro_auc"]
    summary = {}
    for level in ("clips", "segments"):
        values = {k: [r["test"][level][k] for r in per_fold] for k in keys}
        summary[level] = {k: float(np.mean(v)) for k, v in values.items()}
        summary[level].update({f"{k}_std": float(np.std(v)) for k, v in values.items()})
        summary[level]["per_fold"] = values
        summary[level]["confusion"] = np.sum([r["test"][level]["confusion"] for r in per_fold],
                                             axis=0).tolist()
        summary[level]["class_names"] = per_fold[0]["test"][level]["class_names"]
    results = {**{k: per_fold[0][k] for k in ("model", "feature", "data")},
               "folds": config.data.folds, "test": summary}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"{config.data.folds}-fold cross-validation, test clips (mean ± std over folds):")
    for label, key in report.METRICS:
        print(f"  {label:<10} {summary['clips'][key]:.4f} ± {summary['clips'][key + '_std']:.4f}")
    return results


def run_grid(config, workdir: str, cells: List[Tuple[str, str]] = None) -> Dict:
    cells = cells or [(m, f) for f in FEATURES for m in MODELS]
    results = {}
    for model, feature in cells:
        cell_dir = os.path.join(workdir, f"{model}_{feature}")
        results[(model, feature)] = _results(
            cell_dir, f"grid cell {model} x {feature}",
            lambda: run_experiment(cell_config(config, model, feature), cell_dir))
    write_tables(results, workdir, config.data.source)
    return results


def write_tables(results: Dict, workdir: str, data_source: str) -> None:
    rows, md = [], [f"# The study's grid, on {data_source} data",
                    "", "Each cell: jaxgenre's test figure (clip level), and the study's in "
                    "brackets (GTZAN, its tables 1-3).", ""]
    for feature in FEATURES:
        cells = [(m, feature) for m in MODELS if (m, feature) in results]
        if not cells:
            continue
        md += [f"## {TITLES[feature]}", "",
               "| model | " + " | ".join(label for label, _ in report.METRICS) + " |",
               "|---" * (1 + len(report.METRICS)) + "|"]
        for model, _ in cells:
            ours = results[(model, feature)]["test"]["clips"]
            study = report.STUDY[(model, feature)]
            md.append(f"| {NAMES[model]} | " + " | ".join(
                f"{ours[key]:.4f} ({study[i]:.4f})" for i, (_, key) in enumerate(report.METRICS))
                + " |")
            rows.append({"model": model, "feature": feature, "data": data_source,
                         **{f"{label}": ours[key] for label, key in report.METRICS},
                         **{f"study_{label}": study[i]
                            for i, (label, _) in enumerate(report.METRICS)},
                         "macro_auc": ours["macro_auc"]})
        md.append("")
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plots.confusion_grid(
        {(NAMES[m], f): results[(m, f)]["test"]["clips"] if (m, f) in results else None
         for m in MODELS for f in FEATURES}, os.path.join(workdir, "confusion_grid.png"))
    print("\n".join(md))
