"""The results package's single sources (issue 23, item 2): the metric list is declared
once and every table, interval and summary follows it; one paired comparison, whose
macro F1 is results.json's, behind both `compare` and the grid's comparisons."""

import ast
import os

import numpy as np
import pytest
from sklearn import metrics as skm

from jaxgenre.results import (clip_table, compare, comparisons, metrics, registry, stats,
                              study, tables)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("blues", "jazz", "rock")


def _probabilities(predictions, n_classes=3):
    probs = np.full((len(predictions), n_classes), 0.1)
    probs[np.arange(len(predictions)), predictions] = 0.8
    return probs / probs.sum(1, keepdims=True)


def test_every_registered_metric_is_reported_as_sklearn_computes_it():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 40)
    probs = rng.dirichlet(np.ones(3), 40)
    report = metrics.classification_report(labels, probs)
    predictions = probs.argmax(1)
    want = {"accuracy": skm.accuracy_score(labels, predictions),
            "macro_precision": skm.precision_score(labels, predictions, average="macro",
                                                   zero_division=0),
            "macro_recall": skm.recall_score(labels, predictions, average="macro"),
            "macro_f1": skm.f1_score(labels, predictions, average="macro"),
            "macro_auc": skm.roc_auc_score(labels, probs, multi_class="ovr")}
    assert set(want) == set(registry.KEYS)
    for key in registry.KEYS:
        assert report[key] == pytest.approx(want[key], abs=1e-12), key
    intervals = stats.metric_intervals(labels, probs, resamples=200)
    assert set(intervals) == {f"{k}_ci" for k in registry.KEYS} | {"intervals_reason"}


def test_the_printed_test_table_has_one_line_per_registered_metric_in_order():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 30)
    report = metrics.classification_report(labels, rng.dirichlet(np.ones(3), 30))
    report.update(stats.metric_intervals(labels, rng.dirichlet(np.ones(3), 30), resamples=200))
    text = tables.test_table({"clips": report, "segments": report}, "resnet18",
                                     "mel", "gtzan")
    rows = [line.split()[0] for line in text.splitlines()[2:]]
    assert rows == [m.label.split()[0] for m in registry.METRICS]
    # the study's figures stand beside the metrics it reported, '-' beside the AUC
    assert text.splitlines()[2].endswith(f"{study.STUDY[('resnet18', 'mel')][0]:.4f}")
    assert text.splitlines()[-1].endswith("-")


def _key_literals(tree: ast.AST):
    """Tuple / list literals holding two or more metric keys: a restated metric list."""
    keys = set(registry.KEYS)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List)):
            found = [e.value for e in node.elts
                     if isinstance(e, ast.Constant) and e.value in keys]
            if len(found) >= 2:
                yield node.lineno, found


def test_the_metric_finder_finds_a_planted_list():
    planted = 'METRICS = (("accuracy", "accuracy"), ("F1", "macro_f1"))\nX = ["macro_f1", "macro_auc"]'
    assert sorted(line for line, _ in _key_literals(ast.parse(planted))) == [1, 2]


def test_no_module_restates_the_metric_list():
    found = {}
    for folder, _, names in os.walk(os.path.join(ROOT, "jaxgenre")):
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(".py") and not path.endswith(os.path.join("results", "registry.py")):
                hits = list(_key_literals(ast.parse(open(path).read())))
                if hits:
                    found[os.path.relpath(path, ROOT)] = hits
    assert found == {}


def _table(predictions, labels):
    return clip_table.ClipTable(tuple(f"c{i}" for i in range(len(labels))), np.asarray(labels),
                                _probabilities(predictions), CLASSES)


def test_compare_gives_results_json_macro_f1_when_a_class_is_missing():
    """Class 'rock' is neither a label nor a prediction: results.json's macro F1 counts it
    as 0 (every class of the task, as sklearn with labels=); compare used to average over
    the two classes present, and so disagreed with the run it compared."""
    labels = np.array([0] * 6 + [1] * 6)
    a = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0])
    b = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0])
    result = compare.compare_tables(_table(a, labels), _table(b, labels))
    for tag, preds in (("a", a), ("b", b)):
        from_run = metrics.classification_report(labels, _probabilities(preds))["macro_f1"]
        by_hand = np.mean([skm.f1_score(labels == c, preds == c, zero_division=0)
                           for c in range(3)])
        assert result[f"{tag}_macro_f1"] == pytest.approx(from_run) == pytest.approx(by_hand)
    assert result["delta_macro_f1"] == pytest.approx(result["b_macro_f1"] - result["a_macro_f1"])


def test_the_grid_and_compare_make_the_same_comparison_of_a_pair():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 60)
    a = np.where(rng.random(60) < 0.6, labels, (labels + 1) % 3)
    b = np.where(rng.random(60) < 0.8, labels, (labels + 2) % 3)
    pair = compare.compare_tables(_table(a, labels), _table(b, labels), seed=3)
    grid = comparisons.compare_cells({("x", "mel"): _table(a, labels),
                                      ("y", "mel"): _table(b, labels)}, seed=3)
    row = grid["pairs"][0]
    for key in ("a_only", "b_only", "p_value", "delta_accuracy", "delta_low", "delta_high",
                "delta_macro_f1", "delta_f1_low", "delta_f1_high"):
        assert row[key] == pair[key], key
    assert row["mdd"] == pair["minimum_detectable_difference"]
    assert pair["a_only"] == int(np.sum((a == labels) & (b != labels)))
