"""The study's numbers (its tables 1-3) and jaxgenre's results laid out beside them."""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

from jaxgenre import models
from jaxgenre.results import registry

FEATURES = ("mel", "spec", "mfcc")
# The study extracted the waveform but trained no model on it: the grid adds that row.
EXTRA_FEATURES = ("waveform",)
TITLES = {"mel": "Table 1. Mel-spectrogram input", "spec": "Table 2. Spectrogram input",
          "mfcc": "Table 3. MFCC input",
          "waveform": "Waveform input (the study trained no model on it)"}
# Test-set figures of the study, tables 1 (mel), 2 (spectrogram) and 3 (MFCC):
# (accuracy, macro precision, macro recall, macro F1), keyed by registry name.
STUDY = {
    ("spectral_cnn", "mel"): (0.4552, 0.5522, 0.4585, 0.4379),
    ("resnet18", "mel"): (0.5759, 0.5328, 0.5839, 0.5472),
    ("efficientnet_v2_s", "mel"): (0.4759, 0.4677, 0.4850, 0.4618),
    ("spectral_cnn", "spec"): (0.5069, 0.5342, 0.5063, 0.4959),
    ("resnet18", "spec"): (0.4793, 0.5030, 0.4857, 0.4850),
    ("efficientnet_v2_s", "spec"): (0.4828, 0.4611, 0.4920, 0.4639),
    ("spectral_cnn", "mfcc"): (0.4724, 0.5242, 0.4782, 0.4646),
    ("resnet18", "mfcc"): (0.5345, 0.5394, 0.5384, 0.5332),
    ("efficientnet_v2_s", "mfcc"): (0.4483, 0.4390, 0.4485, 0.4315),
}
MODELS = tuple(dict.fromkeys(model for model, _ in STUDY))  # the study's three, in its order
# The study's figures above are in the order of registry.STUDY_METRICS.


UNDEFINED = "n/a"
# Under a table with an n/a in it: what it means (the run's results.json says which
# classes made an AUC undefined, `auc_undefined_for`, and why an interval is missing,
# `intervals_reason`).
UNDEFINED_NOTE = ("n/a: undefined for that run (null in its results.json: e.g. no test "
                  "clip, or a macro AUC with no class that has both positive and negative "
                  "test clips; its `auc_undefined_for` and `intervals_reason` say which)")


def figure(value: Optional[float]) -> str:
    """`0.8420`; `n/a` for a figure that is undefined: None (null in a results.json read
    back) or NaN (e.g. a macro AUC without any class that has both outcomes)."""
    if value is None or not math.isfinite(value):
        return UNDEFINED
    return f"{value:.4f}"


def _defined(value):
    """A CSV field: the value, or None (written as an empty field) for a NaN."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def format_test_results(evaluation: Dict, model: str, feature: str, data_source: str) -> str:
    """The test metrics (clip and segment level) next to the study's for this cell."""
    study = STUDY.get((model, feature))
    clips = evaluation["clips"]
    lines = [f"test results: {model} on {feature} ({data_source} data)",
             f"  {'metric':<10} {'clips [95% interval]':>24} {'segments':>9} "
             f"{'study (GTZAN)':>14}"]
    for i, metric in enumerate(registry.METRICS):
        theirs = f"{study[i]:.4f}" if study and metric.in_study else "-"
        lines.append(f"  {metric.label:<10} {with_interval(clips, metric.key):>24} "
                     f"{figure(evaluation['segments'][metric.key]):>9} {theirs:>14}")
    if data_source not in ("folder", "gtzan", "tfds"):  # synthetic, fma
        lines.append(f"  (the study's figures are on GTZAN; these are on the {data_source} set)")
    return "\n".join(lines)


def with_interval(report: Dict, key: str) -> str:
    """`0.8420 [0.7970, 0.8790]`: a figure and its 95 % interval (`<key>_ci`) if known
    (an interval of None / NaN ends, e.g. of a single test clip, is left out; an
    undefined figure is `n/a`)."""
    interval = report.get(f"{key}_ci")
    value = figure(report.get(key))
    if interval is None or value == UNDEFINED or UNDEFINED in map(figure, interval):
        return value
    return f"{value} [{interval[0]:.4f}, {interval[1]:.4f}]"


def grid_tables(results: Dict[Tuple[str, str], Dict], data_source: str
                ) -> Tuple[List[str], List[Dict]]:
    """The grid's clip-level test figures as the study's tables: (markdown lines, CSV rows),
    each cell beside the study's figure in brackets; an undefined figure (null in a
    cell's results.json) is n/a in the markdown and an empty CSV field."""
    rows, md = [], [f"# The study's grid, on {data_source} data",
                    "", "Each cell: jaxgenre's test figure (clip level; mean ± std where a cell "
                    "has several seeds or folds), and the study's in brackets (GTZAN, its "
                    "tables 1-3).", ""]
    shown = registry.STUDY_METRICS
    for feature in FEATURES + EXTRA_FEATURES:
        cells = [(m, f) for m, f in results if f == feature]
        if not cells:
            continue
        md += [f"## {TITLES[feature]}", "",
               "| model | " + " | ".join(m.label for m in shown) + " |",
               "|---" * (1 + len(shown)) + "|"]
        for model, _ in cells:
            ours = results[(model, feature)]["test"]["clips"]
            study = STUDY.get((model, feature))
            theirs = [f"({study[i]:.4f})" if study else "(-)" for i in range(len(shown))]
            spread = lambda key: f" ± {figure(ours[key + '_std'])}" if key + "_std" in ours \
                else ""
            md.append(f"| {models.get_spec(model).display_name} | " + " | ".join(
                f"{figure(ours.get(m.key))}{spread(m.key)} {theirs[i]}"
                for i, m in enumerate(shown)) + " |")
            rows.append({"model": model, "feature": feature, "data": data_source,
                         **{m.label: _defined(ours.get(m.key)) for m in shown},
                         **{f"{m.label}_std": _defined(ours.get(f"{m.key}_std", ""))
                            for m in shown},
                         **{f"study_{m.label}": study[i] if study else ""
                            for i, m in enumerate(shown)},
                         "macro_auc": _defined(ours.get("macro_auc"))})
        md.append("")
    if any(f" {UNDEFINED} " in line for line in md):
        md += [UNDEFINED_NOTE, ""]
    return md, rows
