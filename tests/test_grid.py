"""The study grid on a tiny synthetic set: tables beside the study's, every pair of cells
compared, resumed by cell, a waveform row; k-fold cross-validation and the corrected
resampled t-test between two k-fold runs.

One grid of three cells (SpectralCNN on mel and MFCC, SampleCNN on the waveform), trained
once per module, serves every test that reads a finished grid; the grid with seeds is
in test_seeds.py."""

import csv
import json

import numpy as np
import pytest

from configs import base
from jaxgenre import experiments
from jaxgenre.results import clip_table, study
from test_sample_cnn import tiny

CELLS = [("spectral_cnn", "mel"), ("spectral_cnn", "mfcc"), ("sample_cnn", "waveform")]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The grid of CELLS on `tiny`'s data (30 clips of 2 s, one epoch), images resized to
    48 x 48 as BUILD_NOTES' reduced grid does: (config, workdir)."""
    config = tiny(base.get_config())
    config.model.input_size = (48, 48)
    workdir = tmp_path_factory.mktemp("grid")
    experiments.run_grid(config, str(workdir), cells=CELLS)
    return config, workdir


def _cell(workdir, model, feature):
    """A cell's results.json and its per-clip predictions."""
    folder = workdir / f"{model}_{feature}"
    return (json.loads((folder / "results.json").read_text()),
            clip_table.read(str(folder / clip_table.FILE_NAME)))


@pytest.mark.slow  # the grid fixture trains three cells, ~35 s
def test_grid_writes_the_studys_tables_with_a_waveform_row(grid):
    from sklearn.metrics import accuracy_score

    _, workdir = grid
    table = (workdir / "results.md").read_text()
    assert "Table 1. Mel-spectrogram input" in table and "Table 3. MFCC input" in table
    assert f"({study.STUDY[('spectral_cnn', 'mel')][0]:.4f})" in table
    assert "Waveform input (the study trained no model on it)" in table
    assert "| SampleCNN (waveform) |" in table and "(-)" in table
    rows = list(csv.DictReader(open(workdir / "results.csv")))
    assert [(r["model"], r["feature"]) for r in rows] == CELLS
    assert float(rows[1]["study_accuracy"]) == study.STUDY[("spectral_cnn", "mfcc")][0]
    assert rows[2]["study_accuracy"] == ""  # the study has no waveform figures
    # Each row's accuracy is its cell's, which is sklearn's on the cell's predictions.
    for row, (model, feature) in zip(rows, CELLS):
        results, predictions = _cell(workdir, model, feature)
        expected = accuracy_score(predictions.labels, predictions.probabilities.argmax(1))
        assert float(row["accuracy"]) == results["test"]["clips"]["accuracy"] == expected
        assert f"| {results['test']['clips']['accuracy']:.4f} (" in table
    assert (workdir / "confusion_grid.png").read_bytes()[:4] == b"\x89PNG"
    # The reduced grid's image size reaches the image cells; the waveform cell has no
    # image, so the setting skips it instead of stopping the grid there.
    run_config = lambda cell: json.loads((workdir / cell / "run.json").read_text())["config"]
    assert run_config("spectral_cnn_mel")["model"]["input_size"] == [48, 48]
    assert run_config("sample_cnn_waveform")["model"]["input_size"] is None


@pytest.mark.slow  # the grid fixture
def test_grid_compares_every_pair_with_exact_mcnemar_and_holm(grid):
    """comparisons.csv against statsmodels: exact McNemar on the cells' predictions,
    counted by hand, and Holm's step-down adjustment over the three pairs. (One epoch on
    30 clips: the cells barely differ and p is near 1; the tests themselves, on data
    where they matter, are test_comparisons.py's. Here: the grid feeds them the right
    predictions and writes what they give.)"""
    from statsmodels.stats.contingency_tables import mcnemar
    from statsmodels.stats.multitest import multipletests

    _, workdir = grid
    pairs = list(csv.DictReader(open(workdir / "comparisons.csv")))
    labels = [f"{m}/{f}" for m, f in CELLS]
    assert [(p["a"], p["b"]) for p in pairs] == [(labels[0], labels[1]), (labels[0], labels[2]),
                                                 (labels[1], labels[2])]
    right = {}
    for cell, label in zip(CELLS, labels):
        _, predictions = _cell(workdir, *cell)
        right[label] = predictions.probabilities.argmax(1) == predictions.labels
    for pair in pairs:
        for column in ("a_only", "b_only", "p_value", "p_holm", "delta_accuracy", "delta_low",
                       "delta_high"):
            assert pair[column] != "", column
        a, b = right[pair["a"]], right[pair["b"]]
        assert (int(pair["a_only"]), int(pair["b_only"])) == (np.sum(a & ~b), np.sum(b & ~a))
        counts = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
        expected = mcnemar(counts, exact=True).pvalue if np.sum(a != b) else 1.0
        assert float(pair["p_value"]) == pytest.approx(expected, rel=1e-12)
        assert float(pair["delta_accuracy"]) == pytest.approx(b.mean() - a.mean())
    holm = multipletests([float(p["p_value"]) for p in pairs], method="holm")[1]
    np.testing.assert_allclose([float(p["p_holm"]) for p in pairs], holm, rtol=1e-12)
    table = (workdir / "results.md").read_text()
    assert "## The study's conclusions, tested" in table
    for figure in ("comparisons_pvalues", "accuracy_intervals"):
        assert (workdir / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # the grid fixture
def test_a_finished_grid_trains_nothing_again(grid, monkeypatch):
    config, workdir = grid
    calls = []
    monkeypatch.setattr("jaxgenre.experiments.run_one", lambda *a: calls.append(a))
    experiments.run_grid(config, str(workdir), cells=CELLS)
    assert calls == []


@pytest.mark.slow  # the grid fixture
def test_the_waveform_cell_runs_end_to_end(grid):
    """A smoke test of SampleCNN's cell (files, shapes, predict on a clip of another
    length); that it learns is test_sample_cnn's test on two tones."""
    from jaxgenre import predict
    from jaxgenre.data import synthetic

    _, workdir = grid
    folder = workdir / "sample_cnn_waveform"
    results = json.loads((folder / "results.json").read_text())
    assert results["model"] == "sample_cnn" and results["feature"] == "waveform"
    assert results["test"]["clips"]["n"] == 10 and results["test"]["segments"]["n"] == 40
    run = json.loads((folder / "run.json").read_text())
    assert run["segment_frames"] == 11025  # 0.5 s of samples
    assert [json.loads(l)["epoch"] for l in (folder / "metrics.jsonl").read_text()
            .splitlines()] == [1]
    probs = predict.Predictor(str(folder)).probabilities(
        synthetic.generate_clip(3, 7, seconds=1.3))
    assert probs.shape == (10,) and abs(float(probs.sum()) - 1) < 1e-5


def test_the_default_grid_is_the_studys_nine_cells_then_the_waveform():
    default = experiments.grid_cells()
    assert default[:9] == [(m, f) for f in ("mel", "spec", "mfcc")
                           for m in ("spectral_cnn", "resnet18", "efficientnet_v2_s")]
    assert default[9:] == [("sample_cnn", "waveform")]


@pytest.mark.slow  # two k-fold runs, ~15 s
def test_kfold_trains_every_fold_and_reports_mean_and_std(tmp_path):
    from scipy import stats as sps

    from jaxgenre.results import compare

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
    np.testing.assert_allclose(summary["test"]["clips"]["accuracy_ci"], sps.t.interval(
        0.95, 2, loc=np.mean(accuracies), scale=sps.sem(accuracies)))
    assert summary["clips_per_fold"]["test"] == [10, 10, 10]
    train_sizes = [f["clips"]["train"] for f in folds]
    assert summary["clips_per_fold"]["train"] == train_sizes
    # The folds' predictions together: every clip once, so k-fold cells can be paired.
    pooled = clip_table.read(str(tmp_path / clip_table.FILE_NAME))
    assert len(pooled.clip_ids) == len(set(pooled.clip_ids)) == 30
    # Two k-fold runs: Nadeau & Bengio's corrected resampled t-test on their per-fold
    # accuracies, by hand: differences with a real spread, variance (1/k + n_test /
    # n_train) s², t with k - 1 degrees of freedom, two-sided p from scipy's t.
    other = json.loads(json.dumps(summary))
    differences = np.array([0.1, 0.3, -0.05])
    other["test"]["clips"]["per_fold"]["accuracy"] = list(np.add(accuracies, differences))
    cv = compare.cross_validated(summary, other)
    k, n_test, n_train = 3, 10, np.mean(train_sizes)
    variance = (1 / k + n_test / n_train) * np.var(differences, ddof=1)
    t = np.mean(differences) / np.sqrt(variance)
    assert cv["folds"] == 3 and cv["mean_difference"] == pytest.approx(0.35 / 3)
    assert cv["t"] == pytest.approx(t, rel=1e-9)
    assert cv["p_value"] == pytest.approx(2 * sps.t.sf(abs(t), k - 1), rel=1e-9)
    # Uncorrected (s² / k) would give a smaller p: the correction matters here.
    assert cv["p_value"] > 2 * sps.t.sf(np.mean(differences) / np.sqrt(
        np.var(differences, ddof=1) / k), k - 1) + 0.05
