"""The grid's cells compared with each other on their common test clips: every pair
(exact McNemar, paired bootstrap Δ, Holm's correction over all pairs), Cochran's Q across
the models of each feature, and the study's three conclusions tested
(`claims`). `experiments.run_grid` writes what this returns as comparisons.csv and a
section of results.md.

Why Holm and Cochran's Q are written here: scipy has neither (its multiple-testing
helper does Benjamini-Hochberg / Yekutieli only) and statsmodels, which has both, is not
a core dependency; each is a few lines, tested against statsmodels.
"""

from __future__ import annotations

import itertools
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import stats as sps

from jaxgenre.results import clip_table, paired, stats, study
from jaxgenre.results import tables as tables_lib

Cell = Tuple[str, str]  # (model, feature)
ALPHA = 0.05


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the given order."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order]) if m else p
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def cochrans_q(correct: np.ndarray) -> Tuple[float, float]:
    """Cochran's Q test that k classifiers (columns) have the same accuracy on the same
    clips (rows): (Q, p) with k - 1 degrees of freedom; (0, 1) when no clip splits them."""
    x = np.asarray(correct, dtype=np.float64)
    k = x.shape[1]
    row, col, total = x.sum(1), x.sum(0), x.sum()
    denominator = k * total - np.sum(row ** 2)
    if denominator == 0:
        return 0.0, 1.0
    q = (k - 1) * (k * np.sum(col ** 2) - total ** 2) / denominator
    return float(q), float(sps.chi2.sf(q, k - 1))


def _label(cell: Cell) -> str:
    return f"{cell[0]}/{cell[1]}"


def compare_cells(tables: Dict[Cell, clip_table.ClipTable], *, seed: int = 0) -> Dict:
    """{'pairs': one row per pair of cells (comparisons.csv), 'cochran': per feature,
    'clips': n, 'accuracy': per cell on these predictions, 'discordant_share': the median
    over pairs of the share of clips only one cell of the pair gets right, 'mdd': the
    minimum detectable difference at that share}. Holm's correction runs over two
    families apart: the pairs of the study's grid, and the pairs with a music-pretrained
    cell (`family`), so the study's claims read the same whether or not musicnn ran."""
    cells = list(tables)
    first = tables[cells[0]]
    aligned = dict(zip(cells, clip_table.aligned_probabilities(
        [tables[c] for c in cells], [_label(c) for c in cells])))
    labels = first.labels
    n_classes = len(first.class_names)
    predictions = {c: p.argmax(1) for c, p in aligned.items()}
    rows = []
    row_keys = ("a_only", "b_only", "p_value", "p_holm") + sum(DELTAS, ())
    for a, b in itertools.combinations(cells, 2):
        pair = paired.compare_predictions(labels, predictions[a], predictions[b], n_classes,
                                          seed=seed)
        rows.append({"a": _label(a), "b": _label(b),
                     **{k: pair.get(k) for k in row_keys},
                     "mdd": pair["minimum_detectable_difference"]})
    music = lambda label: label.split("/", 1)[1] in study.MUSIC_MODES
    for row in rows:
        row["family"] = "music" if music(row["a"]) or music(row["b"]) else "study"
    for family in ("study", "music"):
        members = [r for r in rows if r["family"] == family]
        for row, adjusted in zip(members, holm([r["p_value"] for r in members])):
            row["p_holm"] = float(adjusted)
    cochran = {}
    for feature in dict.fromkeys(f for _, f in cells):
        group = [c for c in cells if c[1] == feature]
        if len(group) > 2:
            q, p = cochrans_q(np.stack([predictions[c] == labels for c in group], axis=1))
            cochran[feature] = {"models": [m for m, _ in group], "q": q, "p_value": p}
    shares = [(r["a_only"] + r["b_only"]) / labels.size for r in rows]
    accuracy = {c: float(np.mean(p == labels)) for c, p in predictions.items()}
    share = float(np.median(shares)) if shares else None
    return {"pairs": rows, "cochran": cochran, "clips": int(labels.size), "accuracy": accuracy,
            "discordant_share": share,
            "mdd": stats.minimum_detectable_difference(labels.size, share) if shares else None}


# Each difference b - a of a pair and its interval (low, high): read as a - b, the
# difference is negated and the interval mirrored, (-high, -low).
DELTAS = (("delta_accuracy", "delta_low", "delta_high"),
          ("delta_macro_f1", "delta_f1_low", "delta_f1_high"))


def _pair(result: Dict, a: Cell, b: Cell) -> Dict:
    """The row of pair (a, b), oriented so that every Δ is b − a: a row stored as (b, a)
    has its cells and one-sided counts swapped, each difference negated and each
    interval mirrored (`DELTAS`); p-values and the detectable difference are symmetric."""
    for row in result["pairs"]:
        if (row["a"], row["b"]) == (_label(a), _label(b)):
            return row
        if (row["a"], row["b"]) == (_label(b), _label(a)):
            flipped = dict(row, a=row["b"], b=row["a"], a_only=row["b_only"],
                           b_only=row["a_only"])
            for value, low, high in DELTAS:
                flipped.update({value: -row[value], low: -row[high], high: -row[low]})
            return flipped
    raise KeyError((a, b))


def _best_model_claim(result: Dict, model: str, feature: str, claim: str) -> Dict:
    accuracy = result["accuracy"]
    rivals = [c for c in accuracy if c[1] == feature and c[0] != model]
    if (model, feature) not in accuracy or not rivals:
        return {"claim": claim, "verdict": "not tested: the grid lacks these cells",
                "evidence": []}
    evidence = [_pair(result, rival, (model, feature)) for rival in rivals]
    better = [e for e in evidence if e["p_holm"] < ALPHA and e["delta_accuracy"] > 0]
    worse = [e for e in evidence if e["p_holm"] < ALPHA and e["delta_accuracy"] < 0]
    if worse:
        verdict = "contradicted: " + ", ".join(f"{e['a']} is significantly better" for e in worse)
    elif len(better) == len(evidence):
        verdict = "supported: significantly better than every other model on this feature"
    else:
        top = max(accuracy[c] for c in rivals) < accuracy[(model, feature)]
        verdict = ("not shown: " + ("highest accuracy" if top else "not the highest accuracy")
                   + ", but not significantly different from "
                   + ", ".join(e["a"] for e in evidence if e["p_holm"] >= ALPHA))
    return {"claim": claim, "verdict": verdict, "evidence": evidence}


def _music_claim(result: Dict, imagenet_cells: Optional[set]) -> Dict:
    """Music pretraining beats ImageNet pretraining: every music-pretrained cell against
    every ImageNet-pretrained cell of the grid (the study's question, asked of the
    field's later answer). Supported when each such pair favours the music cell
    significantly; contradicted when any ImageNet cell is significantly better.
    `imagenet_cells`: the cells that did start from ImageNet weights (a cell whose
    weights could not be had trains from random ones); None: every ResNet-18 and
    EfficientNetV2-S cell."""
    claim = ("music pretraining beats ImageNet pretraining: musicnn pretrained on the Million "
             "Song Dataset (probe and fine-tune) against ResNet-18 and EfficientNetV2-S "
             "pretrained on ImageNet, each pair on the same test clips")
    music = [c for c in result["accuracy"] if c[1] in study.MUSIC_MODES]
    image = [c for c in result["accuracy"] if c[0] in study.IMAGENET_MODELS
             and (imagenet_cells is None or c in imagenet_cells)]
    if music and not image and any(c[0] in study.IMAGENET_MODELS for c in result["accuracy"]):
        return {"claim": claim, "verdict": "not tested: none of the grid's ResNet-18 and "
                "EfficientNetV2-S cells started from ImageNet weights (model.pretrained="
                "False, or the weights could not be had: see each cell's results.json)",
                "evidence": []}
    if not (music and image):
        return {"claim": claim, "verdict": "not tested: the grid lacks these cells",
                "evidence": []}
    evidence = [_pair(result, i, m) for m in music for i in image]
    worse = [e for e in evidence if e["p_holm"] < ALPHA and e["delta_accuracy"] < 0]
    better = [e for e in evidence if e["p_holm"] < ALPHA and e["delta_accuracy"] > 0]
    if worse:
        verdict = "contradicted: " + ", ".join(f"{e['a']} is significantly better than "
                                               f"{e['b']}" for e in worse)
    elif len(better) == len(evidence):
        verdict = "supported: every music-pretrained cell is significantly better than " \
                  "every ImageNet-pretrained cell"
    else:
        verdict = (f"not shown: {len(better)} of {len(evidence)} pairs favour the music "
                   f"cell significantly, none the ImageNet cell")
    return {"claim": claim, "verdict": verdict, "evidence": evidence}


def claims(result: Dict, imagenet_cells: Optional[set] = None) -> List[Dict]:
    """The study's conclusions, each with a verdict and the pairwise evidence (Holm-
    adjusted exact McNemar p, Δ accuracy with its paired bootstrap interval), then the
    music-pretraining claim (`imagenet_cells`: see `_music_claim`)."""
    accuracy = result["accuracy"]
    out = [_best_model_claim(result, "resnet18", f,
                             f"ResNet-18 is the best model on {name} input")
           for f, name in (("mel", "mel-spectrogram"), ("mfcc", "MFCC"))]
    out.append(_best_model_claim(result, "spectral_cnn", "spec",
                                 "SpectralCNN is the best model on the plain spectrogram"))
    evidence = [_pair(result, ("spectral_cnn", f), (m, f)) for m, f in accuracy
                if m in ("resnet18", "efficientnet_v2_s") and ("spectral_cnn", f) in accuracy]
    significant = [e for e in evidence if e["p_holm"] < ALPHA]
    claim = ("no significant difference between the from-scratch spectral model "
             "(SpectralCNN) and the ImageNet models (ResNet-18, EfficientNetV2-S); compared "
             "per feature, each ImageNet model against SpectralCNN on the same input, because "
             "a model's accuracy depends on its input and pooling features would mix that in")
    if not evidence:
        verdict = "not tested: the grid lacks these cells"
    elif significant:
        verdict = "contradicted: " + "; ".join(
            f"{e['b']} vs {e['a']}: Δ {tables_lib.signed(e['delta_accuracy'])}, p_holm {e['p_holm']:.3g}"
            for e in significant)
    else:
        verdict = "consistent with the data: no pair differs significantly (which is not " \
                  "evidence of equality when the minimum detectable difference is large)"
    out.append({"claim": claim, "verdict": verdict, "evidence": evidence})
    out.append(_music_claim(result, imagenet_cells))
    return out


