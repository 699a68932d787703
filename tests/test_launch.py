"""The README's main command, end to end, in a subprocess (as a user runs it)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _launch(*args, **kwargs):
    return subprocess.run([sys.executable, "launch.py", "--config=configs/base.py", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, **kwargs)


def test_main_job_writes_summary_and_figure(tmp_path):
    result = _launch(f"--workdir={tmp_path}", "--config.data.clip_seconds=3",
                     "--config.features.ref=max", "--config.data.synthetic.clips_per_class=3",
                     "--config.data.synthetic.seconds=3")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "feature_summary.json").read_text())
    assert summary["clip_seconds"] == 3
    assert set(summary["features"]) == {"mel", "spec", "mfcc", "waveform"}
    assert summary["features"]["mel"]["shape"] == [128, 130]
    assert summary["features"]["mel"]["max"] == pytest.approx(0.0, abs=1e-4)  # ref='max'
    for kind, tol in (("spec", 0.01), ("mel", 0.01), ("mfcc", 0.02)):
        assert summary["features"][kind]["max_abs_diff_vs_librosa"] <= tol
    png = (tmp_path / "features.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "max|Δ| librosa" in result.stdout
    # Then the configured data set (synthetic) is prepared and its report written.
    report = json.loads((tmp_path / "data_report.json").read_text())
    assert report["usable_clips"] == 30 and report["rejected"] == []
    assert "split: train 10 clips / 10 segments, valid 10 clips" in result.stdout
    assert "model input per segment: (128, 130)" in result.stdout


def test_mistyped_override_fails_naming_the_key(tmp_path):
    result = _launch(f"--workdir={tmp_path}", "--config.featurs.kind=mel")
    assert result.returncode != 0
    assert "featurs" in result.stderr and "features" in result.stderr


def test_import_jaxgenre_does_not_import_torch_or_tensorflow():
    code = ("import sys, jaxgenre, jaxgenre.audio, jaxgenre.features, jaxgenre.feature_summary, "
            "jaxgenre.models, jaxgenre.models.torchvision_port, jaxgenre.data.prepare;"
            "bad = [m for m in ('torch', 'tensorflow', 'torchvision') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
