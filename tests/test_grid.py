"""The study grid on a tiny synthetic set: tables beside the study's, resumed by cell."""

import csv
import json

import numpy as np
import pytest

from configs import base
from jaxgenre import clip_table, experiments, study


def _tiny_grid_config():
    """The grid config on 3 clips per class of 4 s, 1 epoch: seconds per cell."""
    config = base.get_config()
    config.data.synthetic.update(clips_per_class=3, seconds=4.0)
    config.data.update(clip_seconds=4.0, segment_seconds=1.0)
    config.features.n_mels = 32
    config.train.update(epochs=1, batch_size=8)
    config.eval.update(batch_size=8, plots=False)
    return config


def test_grid_writes_the_studys_tables_and_resumes(tmp_path, monkeypatch):
    config = _tiny_grid_config()
    cells = [("spectral_cnn", "mel"), ("spectral_cnn", "mfcc")]
    experiments.run_grid(config, str(tmp_path), cells=cells)
    table = (tmp_path / "results.md").read_text()
    assert "Table 1. Mel-spectrogram input" in table and "Table 3. MFCC input" in table
    assert f"({study.STUDY[('spectral_cnn', 'mel')][0]:.4f})" in table
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [(r["model"], r["feature"]) for r in rows] == cells
    assert float(rows[1]["study_accuracy"]) == study.STUDY[("spectral_cnn", "mfcc")][0]
    assert (tmp_path / "confusion_grid.png").read_bytes()[:4] == b"\x89PNG"
    # The cells compared: one pair, its columns, the claims section and its figures.
    pairs = list(csv.DictReader(open(tmp_path / "comparisons.csv")))
    assert len(pairs) == 1 and (pairs[0]["a"], pairs[0]["b"]) == ("spectral_cnn/mel",
                                                                  "spectral_cnn/mfcc")
    for column in ("a_only", "b_only", "p_value", "p_holm", "delta_accuracy", "delta_low",
                   "delta_high"):
        assert pairs[0][column] != ""
    assert float(pairs[0]["p_holm"]) == float(pairs[0]["p_value"])  # one test: no correction
    assert "## The study's conclusions, tested" in table
    for figure in ("comparisons_pvalues", "accuracy_intervals"):
        assert (tmp_path / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"

    calls = []  # a second run finds every cell done and trains nothing
    monkeypatch.setattr("jaxgenre.experiments.run_one", lambda *a: calls.append(a))
    experiments.run_grid(config, str(tmp_path), cells=cells)
    assert calls == []


def test_a_grid_with_seeds_reports_mean_and_std_and_compares_the_seed_ensembles(tmp_path):
    config = _tiny_grid_config()
    config.seeds = 2
    cells = [("spectral_cnn", "mel"), ("spectral_cnn", "mfcc")]
    experiments.run_grid(config, str(tmp_path), cells=cells)
    rows = {r["feature"]: r for r in csv.DictReader(open(tmp_path / "results.csv"))}
    table = (tmp_path / "results.md").read_text()
    ensembles = {}
    for model, feature in cells:
        cell = tmp_path / f"{model}_{feature}"
        seeds = [json.loads((cell / f"seed_{s}" / "results.json").read_text())
                 for s in (0, 1)]
        accuracies = [s["test"]["clips"]["accuracy"] for s in seeds]
        assert float(rows[feature]["accuracy"]) == pytest.approx(np.mean(accuracies))
        assert float(rows[feature]["accuracy_std"]) == pytest.approx(np.std(accuracies))
        assert f"{np.mean(accuracies):.4f} ± {np.std(accuracies):.4f}" in table
        ensembles[feature] = clip_table.read(str(cell / clip_table.FILE_NAME))
    # The pair is tested on the seed ensembles' predictions (the cells' own csv files).
    pair = list(csv.DictReader(open(tmp_path / "comparisons.csv")))[0]
    right = {f: t.probabilities.argmax(1) == t.labels for f, t in ensembles.items()}
    assert float(pair["delta_accuracy"]) == pytest.approx(right["mfcc"].mean()
                                                          - right["mel"].mean())
    assert int(pair["a_only"]) == int(np.sum(right["mel"] & ~right["mfcc"]))


def test_kfold_trains_every_fold_and_reports_mean_and_std(tmp_path):
    import json

    import numpy as np

    config = base.get_config()
    config.data.synthetic.update(clips_per_class=3, seconds=4.0)
    config.data.update(clip_seconds=4.0, segment_seconds=1.0, split="kfold", folds=3)
    config.model.update(name="spectral_cnn", pretrained=False)
    config.features.n_mels = 32
    config.train.update(epochs=1, batch_size=8)
    config.eval.update(batch_size=8, plots=False)
    experiments.run(config, str(tmp_path))
    folds = [json.loads((tmp_path / f"fold_{k}" / "results.json").read_text()) for k in range(3)]
    test_clips = [f["test"]["clips"]["n"] for f in folds]
    assert test_clips == [10, 10, 10]  # one clip per class per fold: all 30 tested once
    summary = json.loads((tmp_path / "results.json").read_text())
    accuracies = [f["test"]["clips"]["accuracy"] for f in folds]
    assert summary["test"]["clips"]["accuracy"] == np.mean(accuracies)
    assert summary["test"]["clips"]["accuracy_std"] == np.std(accuracies)
    assert np.sum(summary["test"]["clips"]["confusion"]) == 30
    from scipy import stats as sps

    np.testing.assert_allclose(summary["test"]["clips"]["accuracy_ci"], sps.t.interval(
        0.95, 2, loc=np.mean(accuracies), scale=sps.sem(accuracies)))
    assert summary["clips_per_fold"]["test"] == [10, 10, 10]
    assert summary["clips_per_fold"]["train"] == [f["clips"]["train"] for f in folds]
    # The folds' predictions together: every clip once, so k-fold cells can be paired.
    from jaxgenre import clip_table, compare

    pooled = clip_table.read(str(tmp_path / clip_table.FILE_NAME))
    assert len(pooled.clip_ids) == len(set(pooled.clip_ids)) == 30
    # Two k-fold runs: the corrected resampled t-test on their per-fold accuracies.
    other = json.loads(json.dumps(summary))
    other["test"]["clips"]["per_fold"]["accuracy"] = [a + 0.1 for a in accuracies]
    cv = compare.cross_validated(summary, other)
    assert cv["folds"] == 3 and cv["mean_difference"] == pytest.approx(0.1)


def test_the_grid_has_a_waveform_row_without_study_numbers(tmp_path):
    from test_sample_cnn import tiny

    config = tiny(base.get_config())
    # A reduced grid resizes its images (BUILD_NOTES' command); the waveform cell has
    # none, so the setting skips it instead of stopping the grid there.
    config.model.input_size = (48, 48)
    cells = [("spectral_cnn", "mel"), ("sample_cnn", "waveform")]
    experiments.run_grid(config, str(tmp_path), cells=cells)
    assert json.loads((tmp_path / "spectral_cnn_mel" / "run.json").read_text())[
        "config"]["model"]["input_size"] == [48, 48]
    table = (tmp_path / "results.md").read_text()
    assert "Waveform input (the study trained no model on it)" in table
    assert "| SampleCNN (waveform) |" in table and "(-)" in table
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert rows[1]["model"] == "sample_cnn" and rows[1]["study_accuracy"] == ""
    assert 0.0 <= float(rows[1]["accuracy"]) <= 1.0
    # The default grid: the study's nine cells, then one waveform cell per model taking it.
    default = experiments.grid_cells()
    assert default[:9] == [(m, f) for f in ("mel", "spec", "mfcc")
                           for m in ("spectral_cnn", "resnet18", "efficientnet_v2_s")]
    assert default[9:] == [("sample_cnn", "waveform")]
