"""Every JSON file jaxgenre writes is JSON: NaN and ±inf (an undefined AUC, a diverged
loss, an interval of fewer than two values) are written as null, never as the
`NaN` / `Infinity` that Python's json module writes by default and other parsers reject;
what reads those files back (training curves, the grid's tables) takes the null."""

import json
import math

import numpy as np

from jaxgenre import strict_json
from jaxgenre.results import tables, writer


def _strict(text):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_and_everything_else_is_kept():
    value = {"a": float("nan"), "b": [1.5, float("inf"), -float("inf")], "c": (np.float32(2.5),
             np.float64("nan")), "d": np.array([[1.0, np.nan]]), "e": np.int64(3), "f": "x",
             "g": None, "h": True}
    text = strict_json.dumps(value)
    assert _strict(text) == {"a": None, "b": [1.5, None, None], "c": [2.5, None],
                             "d": [[1.0, None]], "e": 3, "f": "x", "g": None, "h": True}
    assert json.loads(json.dumps({"b": [1.5, 2]})) == _strict(strict_json.dumps({"b": [1.5, 2]}))


def test_a_run_with_an_undefined_auc_and_a_diverged_loss_writes_json(tmp_path):
    from jaxgenre.results import plots

    out = writer.RunWriter(str(tmp_path), files=True)
    for epoch, loss in enumerate([1.2, float("nan"), float("inf")], 1):
        out.epoch({"epoch": epoch, "train_loss": loss, "train_accuracy": 0.5,
                   "valid_accuracy": 0.4})
    lines = [_strict(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [line["train_loss"] for line in lines] == [1.2, None, None]
    plots.training_curves(str(tmp_path / "metrics.jsonl"), str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    clips = {"n": 4, "accuracy": 0.5, "macro_precision": 0.5, "macro_recall": 0.5,
             "macro_f1": 0.5, "macro_auc": float("nan"), "macro_auc_ci": (math.nan, math.nan)}
    out.results({"test": {"clips": clips}}, {"clips": clips, "segments": clips},
                model="resnet18", feature="mel", data_source="synthetic")
    written = _strict((tmp_path / "results.json").read_text())["test"]["clips"]
    assert written["macro_auc"] is None and written["macro_auc_ci"] == [None, None]
    assert written["accuracy"] == 0.5


def test_the_grid_table_shows_an_undefined_figure_as_n_a():
    """results.json read back holds null for an undefined figure: the grid's markdown
    says n/a and its CSV leaves the cell empty (csv writes None as '')."""
    clips = {"accuracy": 0.5, "macro_precision": None, "macro_recall": 0.25,
             "macro_f1": 0.3, "macro_auc": None, "accuracy_std": None}
    md, rows = tables.grid_tables({("resnet18", "mel"): {"test": {"clips": clips}}}, "synthetic")
    row = [line for line in md if line.startswith("| ResNet")][0]
    assert row.split(" | ")[1:3] == ["0.5000 ± n/a (0.5759)", "n/a (0.5328)"], row
    assert md[-2].startswith("n/a: undefined for that run")
    assert rows[0]["precision"] is None and rows[0]["macro_auc"] is None
    assert tables.with_interval({"f1": 0.5, "f1_ci": [None, None]}, "f1") == "0.5000"
    assert tables.with_interval({"f1": float("nan")}, "f1") == "n/a"


def test_a_run_file_nested_too_deeply_is_one_line_naming_it(tmp_path):
    """'[' 100,000 deep is valid JSON syntax that Python's parser cannot hold (a
    RecursionError): the file is named, not a traceback."""
    import pytest

    from jaxgenre.errors import UserError

    path = tmp_path / "results.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match=f"{path}.*nests its JSON too deeply"):
        strict_json.load(str(path), what="a run's results.json")
