"""The study grid on a tiny synthetic set: tables beside the study's, resumed by cell."""

import csv

from configs import base
from jaxgenre import grid, report


def test_grid_writes_the_studys_tables_and_resumes(tmp_path, monkeypatch):
    config = base.get_config()
    config.data.synthetic.update(clips_per_class=3, seconds=4.0)
    config.data.update(clip_seconds=4.0, segment_seconds=1.0)
    config.features.n_mels = 32
    config.train.update(epochs=1, batch_size=8)
    config.eval.update(batch_size=8, plots=False)
    cells = [("spectral_cnn", "mel"), ("spectral_cnn", "mfcc")]
    grid.run_grid(config, str(tmp_path), cells=cells)
    table = (tmp_path / "results.md").read_text()
    assert "Table 1. Mel-spectrogram input" in table and "Table 3. MFCC input" in table
    assert f"({report.STUDY[('spectral_cnn', 'mel')][0]:.4f})" in table
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [(r["model"], r["feature"]) for r in rows] == cells
    assert float(rows[1]["study_accuracy"]) == report.STUDY[("spectral_cnn", "mfcc")][0]
    assert (tmp_path / "confusion_grid.png").read_bytes()[:4] == b"\x89PNG"

    calls = []  # a second run finds every cell done and trains nothing
    monkeypatch.setattr("jaxgenre.train.train_and_evaluate", lambda *a: calls.append(a))
    grid.run_grid(config, str(tmp_path), cells=cells)
    assert calls == []
