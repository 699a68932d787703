"""PNG figures: the study's figure-2 panel of the four features, confusion matrices,
one-vs-rest ROC curves, training curves."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:  # the figures need only what a spec says, not jax
    from jaxgenre.features import FeatureSpec


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def feature_panel(outputs: Sequence[Tuple[FeatureSpec, np.ndarray]], names, path: str) -> None:
    """One row per clip, one column per (feature, its batch of outputs) (the study's
    figure 2 layout)."""
    plt = _pyplot()

    fig, axes = plt.subplots(len(names), len(outputs),
                             figsize=(4 * len(outputs), 2 * len(names)), squeeze=False)
    titles = {"waveform": "waveform (peak-normalised)", "spec": "spectrogram (dB)",
              "mel": "mel-spectrogram (dB)", "mfcc": "MFCC"}
    for col, (spec, batch) in enumerate(outputs):
        kind, sr = spec.kind, spec.sr
        for row, name in enumerate(names):
            ax = axes[row, col]
            data = batch[row]
            if spec.is_waveform:
                ax.plot(np.arange(data.size) / sr, data, linewidth=0.3)
                ax.set_ylim(-1.05, 1.05)
            else:
                seconds = data.shape[-1] * spec.hop_length / sr
                image = ax.imshow(data, origin="lower", aspect="auto", cmap="magma",
                                  extent=(0, seconds, 0, data.shape[0]))
                fig.colorbar(image, ax=ax, pad=0.01)
            if row == 0:
                ax.set_title(titles[kind], fontsize=9)
            if col == 0:
                ax.set_ylabel(name.replace("_", " "), fontsize=8)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def class_panel(source, specs: Sequence[FeatureSpec], path: str, *,
                figure_dir: Optional[str] = None) -> None:
    """The features `specs` (`features.every_kind(config.features)`: all four) of the first
    usable clip of every class of a data source. With `figure_dir` it is drawn once per
    data set and feature parameters (every cell of a grid, every seed, fold and rerun
    shows the same clips) and copied from there."""
    from jaxgenre.data import cache

    refs = [next(r for r in source.clips if r.label == label)  # each class's first clip
            for label in sorted({r.label for r in source.clips})]
    identity = {"figure": [spec.identity() for spec in specs]}
    kept = (os.path.join(figure_dir, "features_per_class-"
                         f"{cache.cache_key(source, identity, refs)}.png") if figure_dir else None)
    try:  # a kept file that is unreadable or no PNG is drawn again
        with open(kept or "", "rb") as f:
            if f.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE:
                shutil.copyfile(kept, path)
                return
    except OSError:
        pass
    audio = np.stack([source.load(ref) for ref in refs])
    outputs = [(spec, np.asarray(spec.compute(audio))) for spec in specs]
    feature_panel(outputs, [ref.clip_id for ref in refs], path)
    if kept:
        tmp = None
        try:  # another process may write it at the same time: whole files only
            os.makedirs(figure_dir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=figure_dir, suffix=".png.tmp")
            os.close(fd)
            shutil.copyfile(path, tmp)
            os.replace(tmp, kept)
        except OSError:  # it is drawn again next time
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)


def _row_shares(counts: np.ndarray) -> np.ndarray:
    """Each row of a confusion matrix as fractions of its true class (empty rows: 0)."""
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


def confusion_matrix(confusion: Sequence[Sequence[int]], class_names: List[str], path: str,
                     title: str = "") -> None:
    """Counts, with each row's share as the colour (rows: true class)."""
    plt = _pyplot()
    counts = np.asarray(confusion)
    shares = _row_shares(counts)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(class_names), 0.6 + 0.5 * len(class_names)))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_grid(cells: Dict, path: str) -> None:
    """A grid of confusion matrices (row shares as colour): `cells` maps (row label,
    column label) to a classification report, or None for a cell that was not run;
    rows and columns appear in the order their labels first occur."""
    plt = _pyplot()
    rows = list(dict.fromkeys(row for row, _ in cells))
    cols = list(dict.fromkeys(col for _, col in cells))
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4 * len(cols), 3.7 * len(rows)),
                             squeeze=False)
    for (row, col), report in cells.items():
        i, j = rows.index(row), cols.index(col)
        ax = axes[i, j]
        ax.set_xticks([])
        ax.set_yticks([])
        if report is None:
            ax.set_title(f"{row} / {col}: not run", fontsize=8)
            continue
        ax.imshow(_row_shares(np.asarray(report["confusion"])), cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"{row} / {col}: acc {report['accuracy']:.2f}", fontsize=8)
        names = report["class_names"]
        if j == 0:
            ax.set_yticks(range(len(names)), names, fontsize=6)
        if i == len(rows) - 1:
            ax.set_xticks(range(len(names)), names, rotation=70, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def roc_curves(report: Dict, path: str, title: str = "") -> None:
    """One-vs-rest ROC per class with its AUC, and the diagonal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, curve in zip(report["class_names"], report["roc_curves"]):
        if curve is None:
            continue
        fpr, tpr = curve
        ax.plot(fpr, tpr, linewidth=1, label=f"{name} ({report['per_class'][name]['auc']:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{title} macro AUC {report['macro_auc']:.3f}", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def training_curves(metrics_jsonl: str, path: str) -> None:
    """Train loss, train and validation accuracy per epoch, from metrics.jsonl (a value
    written as null, e.g. a NaN loss, is a gap in its curve)."""
    plt = _pyplot()
    with open(metrics_jsonl) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    epochs = [r["epoch"] for r in rows]
    curve = lambda key: np.array([r.get(key) for r in rows], dtype=np.float64)  # None -> nan
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, curve("train_loss"), marker=".")
    left.set_xlabel("epoch")
    left.set_ylabel("train loss")
    right.plot(epochs, curve("train_accuracy"), marker=".", label="train")
    right.plot(epochs, curve("valid_accuracy"), marker=".", label="valid (clips)")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.set_ylim(0, 1)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_figures(test: Dict, workdir: str, title: str) -> List[str]:
    """All figures of a finished run; returns their paths."""
    paths = []
    for level in ("clips", "segments"):
        if level == "segments" and test["segments"]["n"] == test["clips"]["n"]:
            continue  # no segmenting: the two levels are the same
        path = os.path.join(workdir, f"confusion_{level}.png")
        confusion_matrix(test[level]["confusion"], test[level]["class_names"], path,
                         f"{title} — test {level}")
        paths.append(path)
    path = os.path.join(workdir, "roc_clips.png")
    roc_curves(test["clips"], path, f"{title} — test clips,")
    paths.append(path)
    if "accuracy_ci" in test["clips"]:
        path = os.path.join(workdir, "metrics_intervals.png")
        metric_intervals(test["clips"], path, f"{title} — test clips")
        paths.append(path)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    if os.path.isfile(metrics_path):
        path = os.path.join(workdir, "training_curves.png")
        training_curves(metrics_path, path)
        paths.append(path)
    return paths


def pvalue_heatmap(labels: List[str], pairs: List[Dict], path: str) -> None:
    """Holm-adjusted p-values of every pair of cells (comparisons.csv) as a symmetric
    matrix, log-scaled, with the values written in and p < 0.05 in bold."""
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    k = len(labels)
    matrix = np.full((k, k), np.nan)
    for row in pairs:
        i, j = labels.index(row["a"]), labels.index(row["b"])
        matrix[i, j] = matrix[j, i] = max(row["p_holm"], 1e-12)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.7 * k))
    image = ax.imshow(matrix, cmap="viridis", norm=LogNorm(vmin=1e-4, vmax=1.0))
    for i in range(k):
        for j in range(k):
            if i != j:
                ax.text(j, i, f"{matrix[i, j]:.2g}", ha="center", va="center", fontsize=6,
                        color="white" if matrix[i, j] < 0.05 else "black",
                        weight="bold" if matrix[i, j] < 0.05 else "normal")
    ax.set_xticks(range(k), labels, rotation=70, fontsize=7)
    ax.set_yticks(range(k), labels, fontsize=7)
    fig.colorbar(image, ax=ax, label="p (exact McNemar, Holm-adjusted)")
    ax.set_title("pairs of cells: Holm-adjusted p", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def accuracy_intervals(rows: List[Dict], path: str) -> None:
    """Each cell's clip accuracy with its 95 % interval as an error bar, grouped by
    feature, with the study's figure where it has one (`rows`: label, accuracy, low,
    high, study)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(rows), 4))
    x = np.arange(len(rows))
    acc = np.array([r["accuracy"] for r in rows])
    err = np.array([[r["accuracy"] - r["low"] for r in rows], [r["high"] - r["accuracy"]
                                                                for r in rows]])
    ax.errorbar(x, acc, yerr=err, fmt="o", capsize=4, label="jaxgenre (95% interval)")
    study = [(i, r["study"]) for i, r in enumerate(rows) if r.get("study") is not None]
    if study:
        ax.plot([i for i, _ in study], [v for _, v in study], "x", color="C3",
                label="the study (GTZAN)")
    ax.set_xticks(x, [r["label"] for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy (clips)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def metric_intervals(report: Dict, path: str, title: str = "") -> None:
    """A run's clip-level figures, each with its 95 % interval as an error bar."""
    plt = _pyplot()
    from jaxgenre.results import registry

    shown = [(m.key, m.label) for m in registry.METRICS if f"{m.key}_ci" in report]
    values = np.array([report[key] for key, _ in shown])
    low = np.array([report[f"{key}_ci"][0] for key, _ in shown])
    high = np.array([report[f"{key}_ci"][1] for key, _ in shown])
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    x = np.arange(len(shown))
    # An interval is not guaranteed to hold its estimate (a percentile bootstrap on a
    # skewed statistic): draw the bar as far as it goes, never a negative length.
    yerr = [np.maximum(values - low, 0), np.maximum(high - values, 0)]
    ax.errorbar(x, values, yerr=yerr, fmt="o", capsize=5)
    for i, v in enumerate(values):
        ax.annotate(f"{v:.3f}", (i, v), textcoords="offset points", xytext=(8, 0), fontsize=7)
    ax.set_xticks(x, [label for _, label in shown])
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"{title} (n = {report['n']}, 95% intervals)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
