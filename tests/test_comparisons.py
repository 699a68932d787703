"""The grid's comparisons: Holm and Cochran's Q against statsmodels and a hand-worked
example, and the claims section on tiny made-up grids — one where a model is made
clearly better (it must say significant) and one where models are identical (it must
not)."""

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import cochrans_q as sm_cochrans_q
from sklearn import metrics as skm
from statsmodels.stats.multitest import multipletests

from jaxgenre.results import clip_table, comparisons
from jaxgenre.results import tables as tables_lib
from jaxgenre.errors import UserError

CLASSES = tuple(f"c{i}" for i in range(5))
N = 200


def test_holm_by_hand_and_against_statsmodels():
    # Hand-worked: p = (0.01, 0.04, 0.03, 0.005), m = 4. Sorted 0.005, 0.01, 0.03, 0.04
    # times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06.
    np.testing.assert_allclose(comparisons.holm([0.01, 0.04, 0.03, 0.005]),
                               [0.03, 0.06, 0.06, 0.02])
    p = np.random.default_rng(0).uniform(0, 0.2, 45)
    np.testing.assert_allclose(comparisons.holm(p), multipletests(p, method="holm")[1])


def test_cochrans_q_against_statsmodels():
    rng = np.random.default_rng(1)
    correct = rng.uniform(size=(80, 3)) < [0.5, 0.6, 0.8]
    ours = comparisons.cochrans_q(correct)
    theirs = sm_cochrans_q(correct.astype(int))
    np.testing.assert_allclose(ours, (theirs.statistic, theirs.pvalue))
    assert comparisons.cochrans_q(np.ones((10, 3), bool)) == (0.0, 1.0)


def _table(labels, accuracy, seed):
    """Predictions right on a share `accuracy` of the clips (chosen by `seed`)."""
    rng = np.random.default_rng(seed)
    right = rng.permutation(N) < accuracy * N
    preds = np.where(right, labels, (labels + 1) % 5)
    probs = np.full((N, 5), 0.05)
    probs[np.arange(N), preds] = 0.8
    return clip_table.ClipTable(tuple(f"clip{i}" for i in range(N)), labels, probs, CLASSES)


def _grid(accuracies, same_seed=False):
    labels = np.arange(N) % 5
    return {cell: _table(labels, acc, 0 if same_seed else i)
            for i, (cell, acc) in enumerate(accuracies.items())}


def test_a_clearly_better_model_is_called_significant():
    tables = _grid({("spectral_cnn", "mel"): 0.40, ("resnet18", "mel"): 0.90,
                    ("efficientnet_v2_s", "mel"): 0.45})
    result = comparisons.compare_cells(tables)
    claims = comparisons.claims(result)
    assert claims[0]["verdict"].startswith("supported")
    assert all(e["p_holm"] < 0.05 and e["delta_accuracy"] > 0.4 for e in claims[0]["evidence"])
    assert claims[1]["verdict"].startswith("not tested")  # no MFCC cells
    assert claims[3]["verdict"].startswith("contradicted")  # ResNet-18 beats SpectralCNN
    text = "\n".join(tables_lib.claims_section(result, claims))
    assert "ResNet-18 is the best model on mel-spectrogram input** — supported" in text
    assert len(result["pairs"]) == 3 and result["cochran"]["mel"]["p_value"] < 1e-6


def test_identical_models_are_not_called_different():
    tables = _grid({("spectral_cnn", "spec"): 0.6, ("resnet18", "spec"): 0.6,
                    ("efficientnet_v2_s", "spec"): 0.6}, same_seed=True)
    result = comparisons.compare_cells(tables)
    claims = comparisons.claims(result)
    assert all(r["p_value"] == 1.0 and r["a_only"] == r["b_only"] == 0 for r in result["pairs"])
    assert claims[2]["verdict"].startswith("not shown")  # SpectralCNN best on spec: no
    assert claims[3]["verdict"].startswith("consistent with the data")
    assert result["cochran"]["spec"]["p_value"] == 1.0
    # No discordant clip at all: no detectable difference, and the text says why.
    assert result["discordant_share"] == 0.0 and result["mdd"] is None
    text = "\n".join(tables_lib.claims_section(result, claims))
    assert "none: with so few clips that only one cell of a pair gets right (0.0%)" in text
    assert "Δ +0.000 [+0.000, +0.000]" in text and "-0.000" not in text


def test_a_signed_difference_that_rounds_to_zero_is_printed_without_a_minus():
    assert [tables_lib.signed(v) for v in (-1e-17, -0.0004, 0.02, -0.1)] == \
        ["+0.000", "+0.000", "+0.020", "-0.100"]


def test_a_model_better_than_the_claimed_best_contradicts_the_claim():
    tables = _grid({("spectral_cnn", "mfcc"): 0.95, ("resnet18", "mfcc"): 0.30})
    claims = comparisons.claims(comparisons.compare_cells(tables))
    assert claims[1]["verdict"] == ("contradicted: spectral_cnn/mfcc is significantly better")


@pytest.mark.parametrize("shift", [0, 7])
def test_cells_with_rows_in_another_order_are_aligned(shift):
    tables = _grid({("spectral_cnn", "mel"): 0.5, ("resnet18", "mel"): 0.5}, same_seed=True)
    t = tables[("resnet18", "mel")]
    order = np.roll(np.arange(N), shift)
    tables[("resnet18", "mel")] = clip_table.ClipTable(
        tuple(t.clip_ids[i] for i in order), t.labels[order], t.probabilities[order], CLASSES)
    assert comparisons.compare_cells(tables)["pairs"][0]["p_value"] == 1.0


def test_a_pair_read_in_reverse_has_every_difference_negated_and_interval_mirrored():
    tables = _grid({("spectral_cnn", "mel"): 0.45, ("resnet18", "mel"): 0.7})
    result = comparisons.compare_cells(tables)
    a, b = ("spectral_cnn", "mel"), ("resnet18", "mel")
    forward, reverse = comparisons._pair(result, a, b), comparisons._pair(result, b, a)
    labels = tables[a].labels
    pred = {c: tables[c].probabilities.argmax(1) for c in (a, b)}
    # Independent reference for the point estimates: scikit-learn, b - a and a - b.
    for row, (first, second) in ((forward, (a, b)), (reverse, (b, a))):
        assert row["delta_accuracy"] == pytest.approx(
            skm.accuracy_score(labels, pred[second]) - skm.accuracy_score(labels, pred[first]))
        assert row["delta_macro_f1"] == pytest.approx(
            skm.f1_score(labels, pred[second], average="macro")
            - skm.f1_score(labels, pred[first], average="macro"))
        assert (row["a"], row["b"]) == ("/".join(first), "/".join(second))
    for value, low, high in (("delta_accuracy", "delta_low", "delta_high"),
                             ("delta_macro_f1", "delta_f1_low", "delta_f1_high")):
        assert reverse[value] == -forward[value]
        assert (reverse[low], reverse[high]) == (-forward[high], -forward[low])
    assert (reverse["a_only"], reverse["b_only"]) == (forward["b_only"], forward["a_only"])
    for same in ("p_value", "p_holm", "mdd"):
        assert reverse[same] == forward[same]


def test_cells_with_a_duplicate_clip_are_refused_naming_the_cell_and_the_clip():
    tables = _grid({("spectral_cnn", "mel"): 0.5, ("resnet18", "mel"): 0.5}, same_seed=True)
    t = tables[("resnet18", "mel")]
    # clip4 a second time: the same set of ids, so only a count of each id tells
    rows = np.r_[np.arange(N), 4]
    tables[("resnet18", "mel")] = clip_table.ClipTable(
        tuple(t.clip_ids[i] for i in rows), t.labels[rows], t.probabilities[rows], CLASSES)
    with pytest.raises(UserError, match="resnet18/mel.*clip4"):
        comparisons.compare_cells(tables)


@pytest.mark.parametrize("music_accuracy,expected", [
    ({"probe": 0.95, "finetune": 0.9}, "supported"),
    ({"probe": 0.3, "finetune": 0.9}, "contradicted: resnet18/mel is significantly better "
                                      "than musicnn/probe"),
    ({"probe": 0.62, "finetune": 0.95}, "not shown: 2 of 4 pairs"),
])
def test_the_music_pretraining_claim_is_judged_on_every_music_imagenet_pair(music_accuracy,
                                                                           expected):
    """Four made-up cells, two ImageNet (0.6) and two music-pretrained: each pair's
    evidence is Holm-adjusted McNemar over the whole grid (statsmodels' exact binomial
    test and multipletests, independently), and the verdict follows from it."""
    from statsmodels.stats.contingency_tables import mcnemar

    accuracies = {("resnet18", "mel"): 0.6, ("efficientnet_v2_s", "spec"): 0.6,
                  **{("musicnn", mode): acc for mode, acc in music_accuracy.items()}}
    tables = _grid(accuracies)
    result = comparisons.compare_cells(tables)
    claim = comparisons.claims(result)[-1]
    assert claim["claim"].startswith("music pretraining beats ImageNet pretraining")
    assert claim["verdict"].startswith(expected)
    assert len(claim["evidence"]) == 4
    labels = tables[("resnet18", "mel")].labels
    right = {c: t.probabilities.argmax(1) == labels for c, t in tables.items()}
    cells = list(tables)
    pairs = [(a, b) for i, a in enumerate(cells) for b in cells[i + 1:]]
    p_raw = [mcnemar([[np.sum(right[a] & right[b]), np.sum(right[a] & ~right[b])],
                      [np.sum(~right[a] & right[b]), np.sum(~right[a] & ~right[b])]],
                     exact=True).pvalue for a, b in pairs]
    # Holm over the pairs with a music cell: the study's pairs are a family of their own
    music = [i for i, (a, b) in enumerate(pairs) if "musicnn" in (a[0], b[0])]
    p_holm = dict(zip([pairs[i] for i in music],
                      multipletests([p_raw[i] for i in music], method="holm")[1]))
    for e in claim["evidence"]:
        a, b = (tuple(e["a"].split("/")), tuple(e["b"].split("/")))
        assert b[0] == "musicnn" and a[0] in ("resnet18", "efficientnet_v2_s")
        np.testing.assert_allclose(e["p_holm"], p_holm.get((a, b), p_holm.get((b, a))))
        np.testing.assert_allclose(e["delta_accuracy"], right[b].mean() - right[a].mean())
    assert comparisons.claims(result, imagenet_cells=set())[-1]["verdict"].startswith(
        "not tested: none of the grid's ResNet-18")
    only_resnet = comparisons.claims(result, imagenet_cells={("resnet18", "mel")})[-1]
    assert {e["a"] for e in only_resnet["evidence"]} == {"resnet18/mel"}


def test_the_studys_claims_read_the_same_with_music_cells_added():
    study_cells = {("spectral_cnn", "mel"): 0.55, ("resnet18", "mel"): 0.7,
                   ("efficientnet_v2_s", "mel"): 0.6}
    alone = comparisons.compare_cells(_grid(study_cells))
    more = comparisons.compare_cells(_grid({**study_cells, ("musicnn", "probe"): 0.8,
                                            ("musicnn", "finetune"): 0.85}))
    study_rows = [r for r in more["pairs"] if r["family"] == "study"]
    assert [(r["a"], r["b"], r["p_holm"]) for r in study_rows] == \
        [(r["a"], r["b"], r["p_holm"]) for r in alone["pairs"]]
    assert [c["verdict"] for c in comparisons.claims(alone)[:4]] == \
        [c["verdict"] for c in comparisons.claims(more)[:4]]
