"""A run's files written whole and by the writer only (issue 23, item 2): an atomic write
that fails leaves the old file and no temporary one; the ensemble's files come from the
run writer, so a process that writes no files (multi-host: all but process 0) writes none."""

import json
import os

import numpy as np
import pytest

from jaxgenre import strict_json
from jaxgenre.errors import UserError
from jaxgenre.results import clip_table, ensemble, run_files
from jaxgenre.results import writer as writer_lib
from test_ensemble import _finished_run, _table


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    strict_json.write(str(path), {"accuracy": float("nan"), "n": 3})
    assert json.loads(path.read_text()) == {"accuracy": None, "n": 3}  # NaN as null

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        strict_json.write(str(path), {"accuracy": 0.5})
    assert json.loads(path.read_text()) == {"accuracy": None, "n": 3}
    assert os.listdir(tmp_path) == ["results.json"]


def test_results_are_read_in_one_place_with_one_line_errors(tmp_path):
    assert run_files.read_results(str(tmp_path), optional=True) == {}
    with pytest.raises(UserError, match="results.json' not found.*not a finished run"):
        run_files.read_results(str(tmp_path))
    (tmp_path / "results.json").write_text('{"test": {"clips"')
    with pytest.raises(UserError, match="not valid JSON"):
        run_files.read_results(str(tmp_path))
    path = run_files.write_results(str(tmp_path), {"test": {"clips": {"accuracy": 0.75}}})
    assert path == str(tmp_path / "results.json")
    assert run_files.read_results(str(tmp_path))["test"]["clips"]["accuracy"] == 0.75


def test_the_ensemble_is_built_without_writing_and_written_by_the_writer(tmp_path, capsys):
    tables = [_table(s) for s in (3, 4)]
    for table, feature in zip(tables, ("mel", "spec")):
        _finished_run(tmp_path / f"resnet18_{feature}", table, feature)
    runs = [str(tmp_path / f"resnet18_{f}") for f in ("mel", "spec")]
    built = ensemble.build(runs)
    np.testing.assert_allclose(built.table.probabilities,
                               np.mean([t.probabilities for t in tables], axis=0))
    quiet = tmp_path / "not_process_0"
    writer_lib.RunWriter(str(quiet), files=False).ensemble(built, results_name="results.json",
                                                           plots_on=True)
    assert os.listdir(quiet) == []  # a process that writes no files wrote none
    assert "| **ensemble** |" in capsys.readouterr().out  # but said its table
    out = tmp_path / "process_0"
    writer_lib.RunWriter(str(out), files=True).ensemble(built, results_name="results.json",
                                                        plots_on=False)
    assert sorted(os.listdir(out)) == ["results.json", "results.md", clip_table.FILE_NAME]
    assert json.loads((out / "results.json").read_text()) == json.loads(
        strict_json.dumps(built.results))


def test_a_written_file_has_the_mode_open_would_give(tmp_path):
    """mkstemp makes 0600 files; results.json must stay readable as `open(.., 'w')` makes
    it (0666 less the umask), and a rewrite keeps the file's own mode."""
    umask = os.umask(0o022)
    os.umask(umask)
    plain = tmp_path / "plain.json"
    with open(plain, "w") as f:
        f.write("{}")
    strict_json.write(str(tmp_path / "atomic.json"), {})
    assert (os.stat(tmp_path / "atomic.json").st_mode & 0o777
            == os.stat(plain).st_mode & 0o777 == 0o666 & ~umask)
    os.chmod(tmp_path / "atomic.json", 0o640)
    strict_json.write(str(tmp_path / "atomic.json"), {"again": 1})
    assert os.stat(tmp_path / "atomic.json").st_mode & 0o777 == 0o640


def test_a_run_that_starts_again_keeps_each_epoch_once_in_metrics_jsonl(tmp_path, capsys):
    """An attempt killed after writing epochs 1-3 but saving only epoch 1's checkpoint:
    the run that resumes after epoch 1 keeps epoch 1's line and drops the rest (it
    writes them again), as well as a line cut off by the kill; starting from scratch
    drops every line. Said only when it resumes."""
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"epoch": e, "step": 5 * e, "train_loss": 1.0 / e}) for e in (1, 2, 3)]
    path.write_text("\n".join(lines) + '\n{"epoch": 4, "st')
    writer_lib.RunWriter(str(tmp_path), files=True).starts_at(1, step=5)
    assert path.read_text() == lines[0] + "\n"
    assert f"resuming from {tmp_path}/checkpoints at epoch 1" in capsys.readouterr().out
    writer_lib.RunWriter(str(tmp_path), files=False).starts_at(0, step=0)  # not process 0
    assert path.read_text() == lines[0] + "\n"
    writer_lib.RunWriter(str(tmp_path), files=True).starts_at(0, step=0)
    assert path.read_text() == "" and "resuming" not in capsys.readouterr().out
