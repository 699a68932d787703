"""Audio checked once (issue 23, item 4): a source's second open decodes no file that is
unchanged since the first, and gives the same clips and report; a changed file, a
rejected file, a damaged or hostile verdict file and an unwritable data home each
behave as `audio_checks` says. The reference is the first open, which decodes every file
(today's behaviour) — counted by wrapping `audio.check_clip`."""

import json
import os

import numpy as np
import soundfile as sf

from conftest import BAD_FILES, SR, write_gtzan_folder
from jaxgenre import audio
from jaxgenre.data import audio_checks, folder

GOOD = 7  # write_gtzan_folder's usable clips: 2 per genre and the stereo one


def _counting(monkeypatch):
    calls = []
    real = audio.check_clip

    def check_clip(path, **kw):
        calls.append(os.path.basename(path))
        return real(path, **kw)

    monkeypatch.setattr(audio, "check_clip", check_clip)
    return calls


def _open(root, home, **kw):
    source = folder.FolderSource(root, progress=False, home=str(home), **kw)
    return source, source.report.to_dict()


def _same_except_notes(a, b):
    a, b = dict(a), dict(b)
    a.pop("notes"), b.pop("notes")
    assert a == b


def test_the_second_open_decodes_nothing_unchanged_and_says_so(tmp_path, monkeypatch):
    root = write_gtzan_folder(tmp_path / "gtzan")
    calls = _counting(monkeypatch)
    first, report1 = _open(root, tmp_path / "home")
    assert len(calls) == GOOD + len(BAD_FILES) - 1  # notes.txt is refused by its name
    calls.clear()
    second, report2 = _open(root, tmp_path / "home")
    # Only the rejected files are decoded again; the clips and the report are the same.
    assert sorted(calls) == sorted(os.path.basename(p) + ".wav" for p in BAD_FILES
                                   if not p.endswith(".txt"))
    assert second.clips == first.clips
    _same_except_notes(report1, report2)
    assert f"{GOOD} file(s) unchanged since an earlier check, 3 decoded" in \
        " ".join(report2["notes"])
    np.testing.assert_array_equal(second.load(second.clips[0]), first.load(first.clips[0]))


def test_a_changed_file_is_checked_again(tmp_path, monkeypatch):
    root = write_gtzan_folder(tmp_path / "gtzan")
    first, _ = _open(root, tmp_path / "home")
    good = next(ref.locator for ref in first.clips if ref.clip_id == "jazz/jazz.00000")
    stat = os.stat(good)
    # Same size, the old mtime put back, the content now garbage: ctime tells.
    with open(good, "r+b") as f:
        f.write(b"\0" * stat.st_size)
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.path.getsize(good) == stat.st_size
    calls = _counting(monkeypatch)
    second, report = _open(root, tmp_path / "home")
    assert "jazz.00000.wav" in calls
    assert "jazz/jazz.00000" not in [ref.clip_id for ref in second.clips]
    assert any(r["file"].endswith("jazz.00000.wav") for r in report["rejected"])


def test_a_fixed_rejected_file_is_accepted_at_the_next_open(tmp_path):
    root = write_gtzan_folder(tmp_path / "gtzan")
    first, _ = _open(root, tmp_path / "home")
    short = os.path.join(root, "genres_original", "rock", "rock.00010.wav")
    sf.write(short, np.zeros(11 * SR, np.float32), SR, subtype="PCM_16")
    second, _ = _open(root, tmp_path / "home")
    assert "rock/rock.00010" in [ref.clip_id for ref in second.clips]
    assert len(second.clips) == len(first.clips) + 1


def test_another_min_seconds_is_another_verdict_file(tmp_path, monkeypatch):
    root = write_gtzan_folder(tmp_path / "gtzan")
    _open(root, tmp_path / "home")
    calls = _counting(monkeypatch)
    laxer, _ = _open(root, tmp_path / "home", min_seconds=1.0)  # the 2 s file passes
    assert len(calls) == GOOD + len(BAD_FILES) - 1 and len(laxer.clips) == GOOD + 1
    assert len(os.listdir(tmp_path / "home" / "audio_checks")) == 2


def _verdict_file(home) -> str:
    (name,) = os.listdir(os.path.join(home, "audio_checks"))
    return os.path.join(home, "audio_checks", name)


def test_a_damaged_verdict_file_is_ignored_named_and_rewritten(tmp_path, monkeypatch):
    root = write_gtzan_folder(tmp_path / "gtzan")
    home = str(tmp_path / "home")
    first, _ = _open(root, home)
    path = _verdict_file(home)
    for damage in (b"\x00\xff not json", b'{"version": 1, "files": []}', b"[" * 100000,
                   b'{"version": 99, "files": {}}'):
        with open(path, "wb") as f:
            f.write(damage)
        calls = _counting(monkeypatch)
        again, report = _open(root, home)
        assert again.clips == first.clips and len(calls) == GOOD + len(BAD_FILES) - 1
        assert any("ignored" in n and path in n for n in report["notes"]), damage[:20]
        with open(path) as f:
            assert len(json.load(f)["files"]) == GOOD  # rewritten whole
        monkeypatch.undo()


def test_hostile_entries_are_dropped_one_by_one(tmp_path, monkeypatch):
    """An entry that would accept the empty file (its real stamp, but seconds NaN, below
    min_seconds, a bool, a string) is malformed: the file is checked, and rejected."""
    root = write_gtzan_folder(tmp_path / "gtzan")
    home = str(tmp_path / "home")
    _open(root, home)
    path = _verdict_file(home)
    empty = os.path.join(root, "genres_original", "blues", "blues.00099.wav")
    stamp = audio_checks._stamp(os.stat(empty))
    for seconds in ("NaN", "5.0", "true", '"30"', "1e999", "1e308"):
        with open(path) as f:
            text = f.read()
        body = json.loads(text)
        body["files"][empty] = "STAMP"
        text = json.dumps(body).replace('"STAMP"', json.dumps(stamp)[:-1] + f", {seconds}]")
        with open(path, "w") as f:
            f.write(text)
        source, report = _open(root, home)
        assert "blues/blues.00099" not in [ref.clip_id for ref in source.clips], seconds
        assert any("1 malformed" in n for n in report["notes"]), seconds
    # The entry with a sound value but another file's stamp is simply not a match.
    body = json.loads(open(path).read())
    body["files"][empty] = [1, 2, 3, 30.0]
    with open(path, "w") as f:
        json.dump(body, f)
    source, _ = _open(root, home)
    assert "blues/blues.00099" not in [ref.clip_id for ref in source.clips]


def test_a_data_home_that_cannot_be_written_costs_only_the_speed_up(tmp_path):
    root = write_gtzan_folder(tmp_path / "gtzan")
    home = tmp_path / "home"
    home.write_text("a file where the data home's folder would go")
    first, report = _open(root, home)
    assert len(first.clips) == GOOD
    assert any("could not save the audio checks" in n for n in report["notes"])


def test_the_feature_figure_is_drawn_once_per_data_set(tmp_path, monkeypatch):
    """plots.class_panel with a figure folder: the second run's figure is the first's
    file, drawn without computing a feature; a damaged kept file is drawn again."""
    from configs import base
    from jaxgenre import features
    from jaxgenre.results import plots
    from jaxgenre.data import sources

    config = base.get_config()
    config.data.synthetic.update(clips_per_class=1, seconds=3.0)
    config.data.clip_seconds = 3.0
    source = sources.create_source(config, progress=False)
    computed = []
    real = features.FeatureSpec.compute
    monkeypatch.setattr(features.FeatureSpec, "compute",
                        lambda self, y: computed.append(self.kind) or real(self, y))
    figures = tmp_path / "figures"
    every = features.every_kind(config.features)
    plots.class_panel(source, every, str(tmp_path / "a.png"),
                      figure_dir=str(figures))
    assert sorted(computed) == sorted(features.STUDY_KINDS)
    computed.clear()
    plots.class_panel(source, every, str(tmp_path / "b.png"),
                      figure_dir=str(figures))
    assert computed == []
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    # Other feature parameters are another figure.
    other = features.every_kind(dict(config.features, n_mels=64))
    plots.class_panel(source, other, str(tmp_path / "c.png"), figure_dir=str(figures))
    assert len(computed) == len(features.STUDY_KINDS) and len(os.listdir(figures)) == 2
    # A kept file that is no PNG is not copied into a run: drawn again.
    computed.clear()
    for kept in figures.iterdir():
        kept.write_bytes(b"not a png")
    plots.class_panel(source, every, str(tmp_path / "d.png"),
                      figure_dir=str(figures))
    assert len(computed) == len(features.STUDY_KINDS)
    assert (tmp_path / "d.png").read_bytes() == (tmp_path / "a.png").read_bytes()


def test_a_verdict_file_that_is_no_regular_file_is_ignored_without_blocking(tmp_path):
    root = write_gtzan_folder(tmp_path / "gtzan")
    home = str(tmp_path / "home")
    first, _ = _open(root, home)
    path = _verdict_file(home)
    os.unlink(path)
    os.mkfifo(path)  # reading it would block the run forever
    again, report = _open(root, home)
    assert again.clips == first.clips
    assert any("not a regular file" in n for n in report["notes"])
    os.unlink(path)
    os.symlink("/dev/zero", path)  # endless: reading it would exhaust memory
    again, report = _open(root, home)
    assert again.clips == first.clips
    assert any("not a regular file" in n for n in report["notes"])


def test_a_remembered_file_that_fails_to_load_is_named_and_checked_again(tmp_path):
    """A hostile (or stale) entry that accepts the empty file with its real stamp: the
    load fails in one line that says so, and the next open checks and rejects it."""
    import pytest

    from jaxgenre.audio.read import AudioDecodeError

    root = write_gtzan_folder(tmp_path / "gtzan")
    home = str(tmp_path / "home")
    _open(root, home)
    path = _verdict_file(home)
    empty = os.path.join(root, "genres_original", "blues", "blues.00099.wav")
    body = json.loads(open(path).read())
    body["files"][empty] = audio_checks._stamp(os.stat(empty)) + [30.0]
    with open(path, "w") as f:
        json.dump(body, f)
    fooled, _ = _open(root, home)
    ref = next(r for r in fooled.clips if r.clip_id == "blues/blues.00099")
    with pytest.raises(AudioDecodeError, match="passed an earlier check"):
        fooled.load(ref)
    again, report = _open(root, home)
    assert "blues/blues.00099" not in [r.clip_id for r in again.clips]
    assert any(r["file"].endswith("blues.00099.wav") for r in report["rejected"])
