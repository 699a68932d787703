"""Every table of the results, built in one place from what the run files hold: the
test table a run prints beside the study's figures, the grid's tables (results.md and
results.csv), the k-fold / several-seed summary lines, an ensemble's results.md, the
lines `python -m jaxgenre.compare` prints and the grid's section on the study's claims.
One way to show a figure (`figure`: four decimals, `n/a` when undefined) and its interval
(`with_interval`) serves them all; the columns follow `registry`. The writer prints and
writes what these return.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

from jaxgenre.results import paired, registry
from jaxgenre.results import study as study_data

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


def csv_field(value):
    """A CSV field: the value, or None (written as an empty field) for a NaN."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def test_table(evaluation: Dict, model: str, feature: str, data_source: str) -> str:
    """The test metrics (clip and segment level) next to the study's for this cell."""
    study = study_data.STUDY.get((model, feature))
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


def grid_tables(results: Dict[Tuple[str, str], Dict], data_source: str,
                music_missing: Optional[str] = None) -> Tuple[List[str], List[Dict]]:
    """The grid's clip-level test figures as the study's tables: (markdown lines, CSV rows),
    each cell beside the study's figure in brackets; an undefined figure (null in a
    cell's results.json) is n/a in the markdown and an empty CSV field. The
    music-pretrained cells get their own table; `music_missing` says why they were not
    run, in that table's place."""
    from jaxgenre import models  # display names; compare and ensemble need no jax

    rows, md = [], [f"# The study's grid, on {data_source} data",
                    "", "Each cell: jaxgenre's test figure (clip level; mean ± std where a cell "
                    "has several seeds or folds), and the study's in brackets (GTZAN, its "
                    "tables 1-3).", ""]
    shown = registry.STUDY_METRICS
    for feature in study_data.FEATURES + study_data.EXTRA_FEATURES + ("music",):
        music = feature == "music"
        cells = [(m, f) for m, f in results
                 if (f in study_data.MUSIC_MODES if music else f == feature)]
        if music and music_missing:
            md += [f"## {study_data.MUSIC_TITLE}", "", f"Not run: {music_missing}", ""]
        if not cells:
            continue
        md += [f"## {study_data.MUSIC_TITLE if music else study_data.TITLES[feature]}", "",
               "| model | " + " | ".join(m.label for m in shown) + " |",
               "|---" * (1 + len(shown)) + "|"]
        for model, kind in cells:
            ours = results[(model, kind)]["test"]["clips"]
            study = study_data.STUDY.get((model, kind))
            theirs = [f"({study[i]:.4f})" if study else "(-)" for i in range(len(shown))]
            spread = lambda key: f" ± {figure(ours[key + '_std'])}" if key + "_std" in ours \
                else ""
            name = (study_data.MUSIC_LABELS[kind] if music
                    else models.get_spec(model).display_name)
            md.append(f"| {name} | " + " | ".join(
                f"{figure(ours.get(m.key))}{spread(m.key)} {theirs[i]}"
                for i, m in enumerate(shown)) + " |")
            rows.append({"model": model, "feature": kind, "data": data_source,
                         **{m.label: csv_field(ours.get(m.key)) for m in shown},
                         **{f"{m.label}_std": csv_field(ours.get(f"{m.key}_std", ""))
                            for m in shown},
                         **{f"study_{m.label}": study[i] if study else ""
                            for i, m in enumerate(shown)},
                         "macro_auc": csv_field(ours.get("macro_auc"))})
        md.append("")
    if any(f" {UNDEFINED} " in line for line in md):
        md += [UNDEFINED_NOTE, ""]
    return md, rows


def ensemble_table(members: List[Dict], report: Dict, features: str) -> List[str]:
    """results.md: each member's clip-level test figures and the ensemble's, in the
    grid's columns (n/a for a figure a member's results.json has as null or lacks)."""
    header = [m.label for m in registry.METRICS]
    keys = registry.KEYS
    lines = [f"# Ensemble of {len(members)} runs ({features}), test clips", "",
             "| run | model | feature | " + " | ".join(header) + " |",
             "|---" * (3 + len(header)) + "|"]
    for m in members:
        lines.append(f"| {m['run']} | {m['model']} | {m['feature']} | "
                     + " | ".join(figure(m["clips"].get(k)) for k in keys) + " |")
    lines.append(f"| **ensemble** | | {features} | "
                 + " | ".join(f"**{with_interval(report, k)}**" for k in keys) + " |")
    if any(UNDEFINED in line for line in lines[4:]):
        lines += ["", UNDEFINED_NOTE]
    return lines


def _cv_line(cv: Dict) -> str:
    """The k-fold test's printed line: its figures, or why it is undefined."""
    head = "  k-fold: corrected resampled t-test (Nadeau & Bengio) on per-fold accuracy: "
    if cv["p_value"] is None:
        mean = cv["mean_difference"]
        return (head + (f"mean b - a {mean:+.4f}, " if mean is not None else "")
                + f"p undefined ({cv['reason']})"
                + (f" ({cv['folds']} folds)" if cv["folds"] is not None else ""))
    return (head + f"mean b - a {cv['mean_difference']:+.4f}, t = {cv['t']:.3f}, "
            f"p = {cv['p_value']:.4g} ({cv['folds']} folds)")


def comparison_lines(result: Dict) -> List[str]:
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
        + (f"{mdd:.4f}" if mdd is not None else f"none: {paired.NO_MDD}"),
    ] + ([_cv_line(cv)] if (cv := result.get("cross_validated")) else [])


def signed(value: float) -> str:
    """+0.020, -0.100, and +0.000 for a difference that rounds to zero (never -0.000)."""
    return f"{round(value, 3) + 0.0:+.3f}"


def claims_section(result: Dict, claim_list: List[Dict]) -> List[str]:
    """results.md's section: the claims with their evidence, Cochran's Q, the note on
    power, and where the full pair table is."""
    mdd, share = result["mdd"], result.get("discordant_share")
    if mdd is not None:
        power = f"{mdd:.3f}."
    else:  # too few discordant clips: even all of them going one way is not enough
        power = ("none: with so few clips that only one cell of a pair gets right "
                 + (f"({share:.1%}) " if share is not None else "")
                 + "no difference that share allows is detected with that power.")
    lines = ["## The study's conclusions, tested", "",
             f"On {result['clips']} test clips; exact McNemar tests with Holm's correction over "
             f"all {len(result['pairs'])} pairs of cells; Δ is accuracy difference with a "
             "95 % paired bootstrap interval. Minimum detectable accuracy difference at this "
             "test size (power 0.8, α 0.05, median share of clips only one cell of a pair "
             "gets right): " + power, ""]
    for i, c in enumerate(claim_list, 1):
        lines += [f"{i}. **{c['claim']}** — {c['verdict']}."]
        for e in c["evidence"]:
            lines.append(f"   - {e['b']} vs {e['a']}: Δ {signed(e['delta_accuracy'])} "
                         f"[{signed(e['delta_low'])}, {signed(e['delta_high'])}], only {e['b']} "
                         f"right {e['b_only']}, only {e['a']} right {e['a_only']}, "
                         f"p {e['p_value']:.3g}, p_holm {e['p_holm']:.3g}")
    if result["cochran"]:
        lines += ["", "Cochran's Q (do the models on one feature differ at all?): "
                  + "; ".join(f"{f}: Q = {c['q']:.2f}, p = {c['p_value']:.3g}"
                              for f, c in result["cochran"].items()) + "."]
    lines += ["", "Every pair: comparisons.csv; p-values: comparisons_pvalues.png.", ""]
    return lines


def repeats_lines(results: Dict, title: str, unit: str) -> List[str]:
    """A k-fold or several-seed run's mean ± std over its `unit`s, per study metric."""
    clips = results["test"]["clips"]
    return [f"{title}, test clips (mean ± std over {unit}):"] + [
        f"  {m.label:<10} {figure(clips[m.key])} ± {figure(clips[m.key + '_std'])}"
        for m in registry.STUDY_METRICS]
