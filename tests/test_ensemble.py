"""Ensembles of finished runs: the per-clip table round trip, averaging against
hand-computed means (scipy's geometric mean), refusals naming the run that differs, and
the one command end to end, its metrics against scikit-learn."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from jaxgenre.results import clip_table, ensemble
from jaxgenre.errors import UserError

CLASSES = ("blues", "jazz", "rock")


def _table(seed, order=None, n=12):
    rng = np.random.default_rng(seed)
    ids = [f"{CLASSES[i % 3]}/clip.{i:03d}.wav" for i in range(n)]
    labels = np.arange(n) % 3
    probs = rng.dirichlet(np.ones(3), size=n)
    order = np.arange(n) if order is None else order
    return clip_table.ClipTable(tuple(ids[i] for i in order), labels[order], probs[order],
                                CLASSES)


def test_the_table_reads_back_exactly(tmp_path):
    table = _table(0)
    path = str(tmp_path / clip_table.FILE_NAME)
    clip_table.write(path, table)
    back = clip_table.read(path)
    assert back.clip_ids == table.clip_ids and back.class_names == CLASSES
    np.testing.assert_array_equal(back.labels, table.labels)
    np.testing.assert_array_equal(back.probabilities, table.probabilities)  # bit for bit
    header = (tmp_path / clip_table.FILE_NAME).read_text().splitlines()[0]
    assert header == "clip,label,prediction,p_blues,p_jazz,p_rock"
    first = (tmp_path / clip_table.FILE_NAME).read_text().splitlines()[1].split(",")
    assert first[1] == CLASSES[table.labels[0]]
    assert first[2] == CLASSES[int(np.argmax(table.probabilities[0]))]
    (tmp_path / "bad.csv").write_text(header + "\na,blues,blues,0.5,x,0.5\n")
    with pytest.raises(UserError, match="bad.csv' line 2"):
        clip_table.read(str(tmp_path / "bad.csv"))
    (tmp_path / "old.csv").write_text("clip_id,label,blues,jazz,rock\n")
    with pytest.raises(UserError, match="old.csv' is not a test_predictions.csv"):
        clip_table.read(str(tmp_path / "old.csv"))
    with pytest.raises(UserError, match="not found"):
        clip_table.read(str(tmp_path / "none.csv"))


def test_members_are_aligned_by_clip_and_averaged_by_hand():
    a, b = _table(1), _table(2, order=np.random.default_rng(0).permutation(12))
    combined = ensemble.combine([a, b], ["a", "b"])
    assert combined.clip_ids == a.clip_ids
    b_aligned = b.probabilities[[b.clip_ids.index(c) for c in a.clip_ids]]
    np.testing.assert_allclose(combined.probabilities, (a.probabilities + b_aligned) / 2)
    geometric = ensemble.combine([a, b], ["a", "b"], mean="log_probability").probabilities
    expected = stats.gmean(np.stack([a.probabilities, b_aligned]), axis=0)
    np.testing.assert_allclose(geometric, expected / expected.sum(1, keepdims=True))


def test_members_that_differ_are_refused_naming_the_run():
    a = _table(1)
    with pytest.raises(UserError, match="runs/b tested other clips.*1 missing"):
        ensemble.combine([a, _table(2, n=11)], ["runs/a", "runs/b"])
    relabelled = clip_table.ClipTable(a.clip_ids, (a.labels + 1) % 3, a.probabilities, CLASSES)
    with pytest.raises(UserError, match="runs/b labels some clips differently"):
        ensemble.combine([a, relabelled], ["runs/a", "runs/b"])
    other = clip_table.ClipTable(a.clip_ids, a.labels, a.probabilities, ("x", "y", "z"))
    with pytest.raises(UserError, match="runs/b has classes"):
        ensemble.combine([a, other], ["runs/a", "runs/b"])


def _finished_run(folder, table, feature):
    folder.mkdir()
    clip_table.write(str(folder / clip_table.FILE_NAME), table)
    preds = table.probabilities.argmax(1)
    clips = {"accuracy": skm.accuracy_score(table.labels, preds), "macro_precision": 0.0,
             "macro_recall": 0.0, "macro_f1": 0.0, "macro_auc": 0.5}
    (folder / "results.json").write_text(json.dumps(
        {"model": "resnet18", "feature": feature, "data": "synthetic",
         "test": {"clips": clips}}))


def test_one_command_reports_the_ensemble_like_a_run(tmp_path, capsys):
    tables = [_table(s) for s in (3, 4, 5)]
    for table, feature in zip(tables, ("mel", "spec", "mfcc")):
        _finished_run(tmp_path / f"resnet18_{feature}", table, feature)
    runs = [str(tmp_path / f"resnet18_{f}") for f in ("mel", "spec", "mfcc")]
    out = tmp_path / "ensemble"
    assert ensemble.main([f"--workdir={out}", *runs]) == 0
    results = json.loads((out / "results.json").read_text())
    mean = np.mean([t.probabilities for t in tables], axis=0)
    labels = tables[0].labels
    assert results["feature"] == "mel+spec+mfcc" and len(results["members"]) == 3
    assert results["test"]["clips"]["accuracy"] == skm.accuracy_score(labels, mean.argmax(1))
    np.testing.assert_allclose(results["test"]["clips"]["macro_f1"],
                               skm.f1_score(labels, mean.argmax(1), average="macro"))
    np.testing.assert_allclose(results["test"]["clips"]["macro_auc"],
                               skm.roc_auc_score(labels, mean, multi_class="ovr"))
    rows = [l for l in (out / "results.md").read_text().splitlines() if l.startswith("| ")]
    assert len(rows) == 1 + 3 + 1  # header, members, ensemble
    for figure in ("confusion_clips", "roc_clips"):
        assert (out / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    np.testing.assert_allclose(clip_table.read(str(out / clip_table.FILE_NAME)).probabilities,
                               mean)
    # A folder that is not a finished run: one line, exit 2.
    capsys.readouterr()
    assert ensemble.main([f"--workdir={out}", runs[0], str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing/results.json' not found" in err[0]


def _strict(text):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("content, needle", [
    ('{"model": "resnet18", "test": {"cli', "not valid JSON"),  # truncated
    ('{"model": "resnet18"}', "has no test.clips"),
    ("null", "not a JSON object")])
def test_a_damaged_results_json_of_a_member_is_refused_in_one_line(tmp_path, capsys, content,
                                                                    needle):
    runs = []
    for seed, feature in ((3, "mel"), (4, "spec")):
        _finished_run(tmp_path / feature, _table(seed), feature)
        runs.append(str(tmp_path / feature))
    (tmp_path / "spec" / "results.json").write_text(content)
    assert ensemble.main([f"--workdir={tmp_path / 'out'}", "--no_plots", *runs]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "spec" / "results.json") in err[0], err
    assert needle in err[0], err[0]


def test_an_undefined_auc_is_null_in_valid_json_and_n_a_in_the_table(tmp_path):
    """No test clip of class 'rock': its one-vs-rest AUC is undefined (a NaN in memory).
    A member's results.json holds null there (as runs write it now); the ensemble's
    results.json must be JSON (no NaN) and its table must say n/a, not crash or 'nan'."""
    runs = []
    for seed, feature in ((3, "mel"), (4, "spec")):
        t = _table(seed)
        table = clip_table.ClipTable(t.clip_ids, t.labels % 2, t.probabilities, CLASSES)
        _finished_run(tmp_path / feature, table, feature)
        results = json.loads((tmp_path / feature / "results.json").read_text())
        results["test"]["clips"]["macro_auc"] = None
        (tmp_path / feature / "results.json").write_text(json.dumps(results))
        runs.append(str(tmp_path / feature))
    assert ensemble.main([f"--workdir={tmp_path / 'out'}", "--no_plots", *runs]) == 0
    clips = _strict((tmp_path / "out" / "results.json").read_text())["test"]["clips"]
    assert clips["per_class"]["rock"]["auc"] is None and clips["auc_undefined_for"] == ["rock"]
    mean = np.mean([ensemble.clip_table.read(f"{r}/{clip_table.FILE_NAME}").probabilities
                    for r in runs], axis=0)
    labels = np.arange(12) % 3 % 2
    # Defined classes: scikit-learn's AUC of blues and jazz, one-vs-rest, averaged.
    np.testing.assert_allclose(clips["macro_auc"], np.mean(
        [skm.roc_auc_score(labels == c, mean[:, c]) for c in (0, 1)]))
    md = (tmp_path / "out" / "results.md").read_text()
    member_rows = [l for l in md.splitlines() if l.startswith(f"| {runs[0]} ")]
    assert member_rows and member_rows[0].rstrip(" |").endswith("n/a"), md
    assert "n/a: undefined for that run" in md  # and the table says what n/a means
    assert "nan" not in md.lower()
