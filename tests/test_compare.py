"""python -m jaxgenre.compare on two runs' test_predictions.csv: the counts by hand, the
p-value against statsmodels, the paired interval around the difference, the JSON fields
checks outside the repo read, and refusals."""

import json

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from jaxgenre import clip_table, compare

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
    assert 0 < result["delta_low"] < result["delta_accuracy"] < result["delta_high"]
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
