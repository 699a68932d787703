"""python -m jaxgenre.compare on two runs' test_predictions.csv: the counts by hand, the
p-value against statsmodels, the paired interval around the difference, the JSON fields
checks outside the repo read, and refusals."""

import json

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from jaxgenre.results import clip_table, compare

CLASSES = ("blues", "jazz", "rock", "pop")


def _run(folder, predictions, labels, order):
    folder.mkdir()
    probs = np.full((labels.size, 4), 0.1)
    probs[np.arange(labels.size), predictions] = 0.7
    ids = tuple(f"clip{i:03d}" for i in range(labels.size))
    table = clip_table.ClipTable(tuple(ids[i] for i in order), labels[order], probs[order],
                                 CLASSES)
    clip_table.write(str(folder / clip_table.FILE_NAME), table)
    return str(folder)


def test_compare_two_runs_by_hand_and_against_statsmodels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 120
    labels = rng.integers(0, 4, n)
    wrong = (labels + 1) % 4
    # a right on the first 70 clips; b right on the first 60 and on 40 more.
    a = np.where(np.arange(n) < 70, labels, wrong)
    b = np.where((np.arange(n) < 60) | (np.arange(n) >= 80), labels, wrong)
    run_a = _run(tmp_path / "a", a, labels, np.arange(n))
    run_b = _run(tmp_path / "b", b, labels, rng.permutation(n))  # another row order
    out = tmp_path / "cmp.json"
    assert compare.main([run_a, run_b, f"--json={out}"]) == 0
    result = json.loads(out.read_text())
    assert (result["a_only"], result["b_only"]) == (10, 40)
    np.testing.assert_allclose(result["p_value"], sm_mcnemar(
        np.array([[60, 10], [40, 10]]), exact=True).pvalue)
    assert result["delta_accuracy"] == (100 - 70) / n
    # The paired interval: scipy's BCa bootstrap run directly on the per-clip arrays.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ci = sps.bootstrap((labels, a, b), lambda y, p, q, axis=-1: np.mean(q == y, axis)
                           - np.mean(p == y, axis), paired=True, vectorized=True,
                           method="BCa", n_resamples=2000,
                           random_state=np.random.default_rng(0)).confidence_interval
    np.testing.assert_allclose((result["delta_low"], result["delta_high"]), (ci.low, ci.high),
                               rtol=1e-12)
    assert 0 < result["minimum_detectable_difference"] < result["discordant_share"]
    printed = capsys.readouterr().out
    assert "only a right: 10 clips, only b right: 40 clips" in printed
    assert "minimum detectable accuracy difference" in printed


def test_runs_on_other_clips_are_refused_in_one_line(tmp_path, capsys):
    labels = np.arange(10) % 4
    run_a = _run(tmp_path / "a", labels, labels, np.arange(10))
    run_b = _run(tmp_path / "b", labels, labels, np.arange(9))
    assert compare.main([run_a, run_b]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tested other clips" in err[0] and "1 missing" in err[0]


def _strict(text):
    """json.loads that refuses NaN / Infinity, which are not JSON."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def _kfold_run(folder, accuracies, labels):
    run = _run(folder, labels, labels, np.arange(labels.size))
    folds = len(accuracies)
    (folder / "results.json").write_text(json.dumps(
        {"folds": folds, "test": {"clips": {"per_fold": {"accuracy": accuracies}}},
         "clips_per_fold": {"train": [40] * folds, "valid": [0] * folds,
                            "test": [10] * folds}}))
    return run


@pytest.mark.parametrize("a, b, reason", [
    ([0.5, 0.5, 0.5], [0.75, 0.75, 0.75], "same amount"),  # was t = inf: "Infinity"
    ([0.5], [0.8], "one fold"),
    ([0.3, 0.55, 0.7, 0.35, 0.9], [0.4, 0.65, 0.8, 0.45, 1.0], "same amount")])  # rounding
def test_an_undefined_kfold_test_is_null_with_a_reason_in_valid_json(tmp_path, capsys, a, b,
                                                                      reason):
    labels = np.arange(12) % 4
    run_a = _kfold_run(tmp_path / "a", a, labels)
    run_b = _kfold_run(tmp_path / "b", b, labels)
    out = tmp_path / "cmp.json"
    assert compare.main([run_a, run_b, f"--json={out}"]) == 0
    cv = _strict(out.read_text())["cross_validated"]
    assert cv["p_value"] is None and cv["t"] is None and reason in cv["reason"]
    assert cv["folds"] == len(a) and cv["mean_difference"] == pytest.approx(
        np.mean(b) - np.mean(a))
    printed = capsys.readouterr().out
    assert f"p undefined ({cv['reason']})" in printed
    assert not any(word in printed.lower() for word in ("nan", "inf"))


def test_a_defined_kfold_test_matches_the_hand_computation(tmp_path):
    labels = np.arange(12) % 4
    a, b = [0.5, 0.6, 0.4, 0.5, 0.5], [0.6, 0.6, 0.6, 0.6, 0.6]
    run_a, run_b = _kfold_run(tmp_path / "a", a, labels), _kfold_run(tmp_path / "b", b, labels)
    out = tmp_path / "cmp.json"
    assert compare.main([run_a, run_b, f"--json={out}"]) == 0
    cv = _strict(out.read_text())["cross_validated"]
    # d = 0.1, 0, 0.2, 0.1, 0.1: s^2 = 0.005; (1/5 + 10/40) * 0.005 = 0.00225.
    assert cv["t"] == pytest.approx(0.1 / np.sqrt(0.00225))
    assert cv["p_value"] == pytest.approx(2 * sps.t.sf(0.1 / np.sqrt(0.00225), 4))
    assert cv["reason"] is None


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for needle in needles:
        assert needle in err[0], err[0]


def test_a_header_only_predictions_file_is_refused_in_one_line(tmp_path, capsys):
    labels = np.arange(10) % 4
    run_a = _run(tmp_path / "a", labels, labels, np.arange(10))
    run_b = tmp_path / "b"
    run_b.mkdir()
    (run_b / clip_table.FILE_NAME).write_text("clip,label,prediction,"
                                              + ",".join(f"p_{c}" for c in CLASSES) + "\n")
    assert compare.main([run_a, str(run_b)]) == 2
    _one_line_error(capsys, str(run_b / clip_table.FILE_NAME), "no clips")


@pytest.mark.parametrize("content, needle", [
    ('{"folds": 3, "test": {"clips": {"per_fo', "not valid JSON"),  # truncated
    ("[1, 2]", "not a JSON object"),
    ('{"test": {"clips": {"per_fold": {"accuracy": ["a", "b"]}}}}', "per_fold"),
    ('{"test": {"clips": {"per_fold": {"accuracy": [0.5, 0.6]}}}, '
     '"clips_per_fold": {"train": [0, 0], "test": [5, 5]}}', "clips_per_fold"),
    (b'{"model": "\xff"}', "not valid JSON")])
def test_a_damaged_results_json_is_refused_in_one_line(tmp_path, capsys, content, needle):
    labels = np.arange(10) % 4
    run_a = _kfold_run(tmp_path / "a", [0.5, 0.6], labels)
    run_b = _kfold_run(tmp_path / "b", [0.5, 0.7], labels)
    path = tmp_path / "b" / "results.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert compare.main([run_a, run_b]) == 2
    _one_line_error(capsys, str(path), needle)
