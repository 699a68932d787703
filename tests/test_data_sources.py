"""Sources: a GTZAN-like folder in both layouts, the synthetic set, and the report CLI."""

import json
import os
import re

import numpy as np
import pytest
import soundfile as sf

from conftest import BAD_FILES, GENRES, SR, write_gtzan_folder
from configs import base
from jaxgenre.data import inventory, sources, synthetic


def test_folder_reports_exactly_the_bad_files_and_loads_the_rest(gtzan_folder):
    source = sources.open_source("folder", root=gtzan_folder, clip_seconds=10.0,
                                 progress=False)
    assert source.class_names == GENRES
    rejected = {os.path.splitext(r["file"])[0] if not r["file"].endswith(".txt") else r["file"]:
                r["reason"] for r in source.report.rejected}
    assert set(rejected) == set(BAD_FILES)
    for clip, pattern in BAD_FILES.items():
        assert re.search(pattern, rejected[clip]), (clip, rejected[clip])
    ids = [c.clip_id for c in source.clips]
    assert ids == ["blues/blues.00000", "blues/blues.00001", "jazz/jazz.00000",
                   "jazz/jazz.00001", "rock/rock.00000", "rock/rock.00001", "rock/rock.00011"]
    assert source.report.clip_counts == {"blues": 2, "jazz": 2, "rock": 3}
    assert source.report.total_seconds == pytest.approx(7 * 11.0, abs=0.01)
    for clip_id, label, audio in source:
        assert audio.shape == (10 * SR,) and audio.dtype == np.float32
        assert GENRES[label] == clip_id.split("/")[0]
    # The stereo 44.1 kHz clip is mixed down and resampled like librosa.load.
    import librosa

    stereo = next(c for c in source.clips if c.clip_id == "rock/rock.00011")
    expected, _ = librosa.load(stereo.locator, sr=SR)  # whole file, then cut to 10 s
    np.testing.assert_allclose(source.load(stereo), expected[:10 * SR], atol=1e-6)


def test_any_class_folder_layout_works(tmp_path):
    for name in ("ambient", "techno"):
        os.makedirs(tmp_path / name)
        sf.write(str(tmp_path / name / "a.flac"), np.zeros(11 * SR, np.float32), SR)
    source = sources.open_source("folder", root=str(tmp_path), progress=False)
    assert source.class_names == ("ambient", "techno")
    assert [c.clip_id for c in source.clips] == ["ambient/a", "techno/a"]


def test_missing_root_or_no_audio_fails_at_once_with_the_layout(tmp_path):
    with pytest.raises(sources.DataSourceError, match="does not exist.*genres_original"):
        sources.open_source("folder", root=str(tmp_path / "nowhere"))
    os.makedirs(tmp_path / "empty" / "blues")
    (tmp_path / "empty" / "blues" / "readme.md").write_text("x")
    with pytest.raises(sources.DataSourceError, match="no audio files.*Download GTZAN"):
        sources.open_source("folder", root=str(tmp_path / "empty"))
    with pytest.raises(sources.DataSourceError, match="needs a root"):
        sources.open_source("folder")
    with pytest.raises(sources.DataSourceError, match="unknown data source"):
        sources.open_source("soundcloud")  # "gtzan" is a real source now (fetched)


def test_report_cli_prints_and_writes_json(tmp_path, capsys):
    root = write_gtzan_folder(tmp_path / "g", "kaggle")
    out = tmp_path / "report.json"
    assert inventory.main([f"--root={root}", f"--json={out}"]) == 0
    printed = capsys.readouterr().out
    assert "7 usable clips in 3 classes" in printed and "jazz/jazz.00054.wav" in printed
    data = json.loads(out.read_text())
    assert data["usable_clips"] == 7 and len(data["rejected"]) == len(BAD_FILES)
    assert data["clip_counts"] == {"blues": 2, "jazz": 2, "rock": 3}


def test_report_cli_opens_the_source_a_run_of_its_config_would(tmp_path, capsys):
    """--config: the config file's data section decides (here min_seconds=1, so the 2 s
    clip counts); the report equals the one the run's own create_source makes."""
    root = write_gtzan_folder(tmp_path / "g", "kaggle")
    (tmp_path / "mine.py").write_text(
        "from configs import base\n\n\ndef get_config():\n"
        "    config = base.get_config()\n"
        f"    config.data.update(source='folder', root={root!r}, min_seconds=1.0)\n"
        "    return config\n")
    out = tmp_path / "report.json"
    assert inventory.main([f"--config={tmp_path / 'mine.py'}", f"--json={out}"]) == 0
    config = base.get_config()
    config.data.update(source="folder", root=root, min_seconds=1.0)
    run_report = sources.create_source(config, progress=False).report.to_dict()
    data = json.loads(out.read_text())
    assert data["usable_clips"] == 8  # the 2 s clip too
    assert {k: v for k, v in data.items() if k != "notes"} == \
        {k: v for k, v in run_report.items() if k != "notes"}
    assert inventory.main([f"--config={tmp_path / 'missing.py'}"]) == 2
    assert "cannot read a get_config() from it" in capsys.readouterr().err


def test_report_cli_exit_codes(tmp_path, capsys):
    root = write_gtzan_folder(tmp_path / "g", "kaggle")
    for name in os.listdir(os.path.join(root, "genres_original", "jazz")):
        if not name.startswith("jazz.00054"):
            os.remove(os.path.join(root, "genres_original", "jazz", name))
    assert inventory.main([f"--root={root}"]) == 1
    assert "no usable clip for class(es) jazz" in capsys.readouterr().err
    assert inventory.main([f"--root={tmp_path / 'missing'}"]) == 2


def test_synthetic_is_deterministic_balanced_and_sized():
    a = synthetic.generate_clip(3, 1, seed=7, seconds=2.0)
    np.testing.assert_array_equal(a, synthetic.generate_clip(3, 1, seed=7, seconds=2.0))
    assert not np.array_equal(a, synthetic.generate_clip(3, 1, seed=8, seconds=2.0))
    assert not np.array_equal(a, synthetic.generate_clip(3, 2, seed=7, seconds=2.0))
    assert a.shape == (2 * SR,) and a.dtype == np.float32 and 0.25 < np.abs(a).max() <= 0.9
    source = sources.open_source("synthetic", clips_per_class=3, synthetic_seconds=2.0,
                                 clip_seconds=2.0, seed=7)
    assert source.class_names == synthetic.CLASS_NAMES and len(source) == 30
    assert np.bincount([c.label for c in source.clips]).tolist() == [3] * 10
    clip_id, label, audio = next(iter(source))
    assert clip_id == "blues/synthetic.00000" and label == 0
    np.testing.assert_array_equal(audio, synthetic.generate_clip(0, 0, seed=7, seconds=2.0))
    assert source.report.ok() and source.report.usable == 30


def test_every_synthetic_class_is_audibly_different():
    # Each class's mean spectrum differs from every other's (no two recipes collapse).
    import scipy.signal

    spectra = []
    for label in range(10):
        y = np.concatenate([synthetic.generate_clip(label, i, seconds=3.0) for i in range(2)])
        spectra.append(np.log(scipy.signal.welch(y, fs=SR, nperseg=2048)[1] + 1e-12))
    spectra = np.array(spectra)
    distances = np.abs(spectra[:, None] - spectra[None]).mean(-1)
    assert np.all(distances[~np.eye(10, dtype=bool)] > 0.1)


# --- issue 21 item 4: clip ids are unique by construction --------------------------------

def _tone(path, freq, fmt, seconds=11.0):
    t = np.arange(int(seconds * SR)) / SR
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR,
             format=fmt, subtype="PCM_16")


def test_a_second_file_with_the_same_clip_id_is_reported_and_not_used(tmp_path):
    """jazz.00001.wav beside jazz.00001.au: one clip id. The first usable file in the
    order of AUDIO_EXTENSIONS (.wav before .au) is the clip; the other is in the report
    as its duplicate, and a random split never holds the clip twice."""
    from jaxgenre.data import splits

    root = write_gtzan_folder(tmp_path / "g", "kaggle")
    jazz = os.path.join(root, "genres_original", "jazz")
    _tone(os.path.join(jazz, "jazz.00001.au"), 999.0, "AU")
    source = sources.open_source("folder", root=root, clip_seconds=10.0, progress=False)
    ids = [c.clip_id for c in source.clips]
    assert len(ids) == len(set(ids)) == 7 and ids == sorted(ids)
    kept = next(c for c in source.clips if c.clip_id == "jazz/jazz.00001")
    assert kept.locator.endswith("jazz.00001.wav")
    duplicates = [r for r in source.report.rejected if "duplicate" in r["reason"]]
    assert duplicates == [{"file": os.path.join("jazz", "jazz.00001.au"),
                           "reason": f"duplicate of {os.path.join('jazz', 'jazz.00001.wav')}"
                                     f" (same clip id jazz/jazz.00001); not used"}]
    assert source.report.clip_counts == {"blues": 2, "jazz": 2, "rock": 3}
    assert source.report.total_seconds == pytest.approx(7 * 11.0, abs=0.01)
    for seed in range(20):
        split = splits.random_split(ids, sources.labels_of(source.clips), seed=seed)
        used = [ids[i] for idx in split.values() for i in idx]
        assert sorted(used) == sorted(ids)  # every id once, in one part
    assert "jazz/jazz.00001.au: duplicate of jazz/jazz.00001.wav" in source.report.format()


def test_an_unusable_preferred_file_leaves_the_id_to_the_next_one(tmp_path):
    root = write_gtzan_folder(tmp_path / "g", "kaggle")
    jazz = os.path.join(root, "genres_original", "jazz")
    _tone(os.path.join(jazz, "jazz.00001.au"), 999.0, "AU")
    with open(os.path.join(jazz, "jazz.00001.wav"), "wb") as f:
        f.write(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")  # a broken header
    (tmp_path / "g" / "genres_original" / "jazz" / "jazz.00000.txt").write_text("notes")
    source = sources.open_source("folder", root=root, clip_seconds=10.0, progress=False)
    kept = next(c for c in source.clips if c.clip_id == "jazz/jazz.00001")
    assert kept.locator.endswith("jazz.00001.au")
    reasons = {r["file"]: r["reason"] for r in source.report.rejected}
    assert "duplicate" not in reasons[os.path.join("jazz", "jazz.00001.wav")]
    assert reasons[os.path.join("jazz", "jazz.00000.txt")].startswith("not an audio file")
    assert not any("duplicate" in r for r in reasons.values())


def test_every_source_drops_a_repeated_clip_id_into_its_report(tmp_path):
    """FMA's tracks.csv naming one track twice (the same path, the same id): the first
    row is the clip, the other is reported (FMA's own check; the Source base class does the
    same for sources that have none, the test after the next)."""
    from jaxgenre.data import fma

    audio_dir = tmp_path / "fma_small"
    for tid in (2, 5):
        path = fma.audio_path(str(audio_dir), tid)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _tone(path, 200.0 + tid, "WAV")  # libsndfile reads by content, not by extension
    rows = ["track_id,a,set,set,track", ",,split,subset,genre_top", "track_id,,,,",
            "2,x,training,small,Rock", "5,x,test,small,Pop", "2,x,test,small,Rock"]
    (tmp_path / "tracks.csv").write_text("\n".join(rows) + "\n")
    source = fma.FmaSource(str(tmp_path / "tracks.csv"), str(audio_dir), progress=False)
    ids = [c.clip_id for c in source.clips]
    assert ids == ["Rock/000002", "Pop/000005"]
    assert source.report.clip_counts == {"Rock": 1, "Pop": 1}
    assert source.report.total_seconds == pytest.approx(22.0, abs=0.01)
    dup = [r for r in source.report.rejected if "duplicate" in r["reason"]]
    where = os.path.join("000", "000002.mp3")
    assert dup == [{"file": where, "reason": f"duplicate of {where} (same clip id Rock/000002);"
                                             f" not used"}]


def test_report_json_is_strict_json(tmp_path):
    from jaxgenre.data.types import DataReport

    report = DataReport(source="folder", total_seconds=float("nan"))
    with pytest.raises(ValueError):
        report.write_json(str(tmp_path / "r.json"))


def test_a_source_that_accepts_out_of_order_still_gets_unique_ids_and_a_note():
    """The base class cannot pair accepts with clips here (accepted after assigning, in
    another order): the duplicate is still dropped and counted out, and a note says the
    duration still includes it."""
    from jaxgenre.data.types import ClipRef, DataReport, Source

    class Listed(Source):
        def __init__(self):
            super().__init__(sr=SR, clip_seconds=1.0)
            self.class_names = ("a", "b")
            self.report = DataReport(source="listed", class_names=["a", "b"])
            refs = [ClipRef("a/x", 0, 0), ClipRef("b/y", 1, 1), ClipRef("a/x", 0, 2)]
            for name in ("b", "a", "a"):  # not the clips' order
                self.report.accept(name, 5.0)
            self.clips = refs

    source = Listed()
    assert [(c.clip_id, c.locator) for c in source.clips] == [("a/x", 0), ("b/y", 1)]
    assert source.report.clip_counts == {"a": 1, "b": 1} and source.report.usable == 2
    assert source.report.rejected == [{"file": "a/x (#2)", "reason":
                                       "duplicate of a/x (#0) (same clip id a/x); not used"}]
    assert source.report.notes == ["1 duplicate clip(s) dropped; the total duration still "
                                   "counts them"]


# --- review round 2: entries that cannot be opened, ids that differ only in case ---------

def _two_class_folder(root) -> str:
    """`<root>/{jazz,rock}/<class>.00000.wav`: one usable 1.5 s clip per class."""
    for name in ("jazz", "rock"):
        os.makedirs(os.path.join(str(root), name))
        _tone(os.path.join(str(root), name, f"{name}.00000.wav"), 440.0, "WAV", seconds=1.5)
    return str(root)


def test_entries_that_cannot_be_opened_are_rejected_rows_not_crashes(tmp_path, monkeypatch):
    """A dangling symlink, a symlink loop, a FIFO (which would block an open), a device, a
    socket, a file gone between listing and reading, one open() refuses (EACCES; root
    reads anything, so that refusal is injected): each one rejected row with its reason,
    the rest of the folder used, and nothing hangs (SIGALRM guards the FIFO)."""
    import signal
    import socket

    from jaxgenre.data.folder import FolderSource

    root = _two_class_folder(tmp_path / "d")
    jazz = os.path.join(root, "jazz")
    os.symlink(str(tmp_path / "nowhere.wav"), os.path.join(jazz, "jazz.00001.wav"))
    os.symlink("jazz.00002.wav", os.path.join(jazz, "jazz.00002.wav"))
    os.mkfifo(os.path.join(jazz, "jazz.00003.wav"))
    os.symlink(os.devnull, os.path.join(jazz, "jazz.00004.wav"))
    monkeypatch.chdir(jazz)  # a socket path must be short: bind it relative to the folder
    server = socket.socket(socket.AF_UNIX)
    server.bind("jazz.00005.wav")
    _tone(os.path.join(jazz, "jazz.00007.wav"), 330.0, "WAV", seconds=1.5)
    real_listdir, real_open = os.listdir, os.open

    def listdir(path):  # jazz.00006.wav is listed, then gone before it is read
        names = real_listdir(path)
        return names + ["jazz.00006.wav"] if os.path.basename(path) == "jazz" else names

    def refusing_open(path, flags, *args, **kwargs):
        if str(path).endswith("jazz.00007.wav"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(os, "open", refusing_open)

    def hung(*_):
        raise TimeoutError("validation blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        source = FolderSource(root, min_seconds=1.0, clip_seconds=1.0, progress=False)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        server.close()
    assert [c.clip_id for c in source.clips] == ["jazz/jazz.00000", "rock/rock.00000"]
    reasons = {r["file"]: r["reason"] for r in source.report.rejected}
    expected = {"00001": r"symbolic link to '.*nowhere\.wav', which does not exist",
                "00002": r"cannot be opened: Too many levels of symbolic links",
                "00003": r"is a FIFO \(named pipe\), not a regular file",
                "00004": r"is a character device, not a regular file",
                "00005": r"is a socket, not a regular file",
                "00006": r"does not exist \(removed while",
                "00007": r"cannot be opened: Permission denied"}
    assert set(reasons) == {os.path.join("jazz", f"jazz.{k}.wav") for k in expected}
    for key, pattern in expected.items():
        reason = reasons[os.path.join("jazz", f"jazz.{key}.wav")]
        assert re.search(pattern, reason) and "\n" not in reason, (key, reason)
    assert source.report.clip_counts == {"jazz": 1, "rock": 1}


def test_clip_ids_that_differ_only_in_case_are_one_clip(tmp_path):
    """Jazz.00000.WAV beside jazz.00000.wav (the same bytes): one clip, the first file in
    name order, with its own spelling; the other a reported duplicate, so no split can
    put the one recording in two parts."""
    import shutil

    from jaxgenre.data.folder import FolderSource

    root = _two_class_folder(tmp_path / "d")
    jazz = os.path.join(root, "jazz")
    shutil.copy(os.path.join(jazz, "jazz.00000.wav"), os.path.join(jazz, "Jazz.00000.WAV"))
    source = FolderSource(root, min_seconds=1.0, clip_seconds=1.0, progress=False)
    ids = [c.clip_id for c in source.clips]
    assert ids == ["jazz/Jazz.00000", "rock/rock.00000"]
    assert source.clips[0].locator.endswith("Jazz.00000.WAV")
    assert source.report.rejected == [{
        "file": os.path.join("jazz", "jazz.00000.wav"),
        "reason": f"duplicate of {os.path.join('jazz', 'Jazz.00000.WAV')} "
                  f"(same clip id jazz/Jazz.00000, ignoring case); not used"}]
    assert source.report.clip_counts == {"jazz": 1, "rock": 1}
    # Case still tells classes apart: a clip of another class keeps its own id.
    os.makedirs(os.path.join(root, "Jazz"))
    shutil.copy(os.path.join(jazz, "jazz.00000.wav"), os.path.join(root, "Jazz", "x.wav"))
    shutil.copy(os.path.join(jazz, "jazz.00000.wav"), os.path.join(root, "rock", "X.wav"))
    source = FolderSource(root, min_seconds=1.0, clip_seconds=1.0, progress=False)
    assert [c.clip_id for c in source.clips] == ["Jazz/x", "jazz/Jazz.00000", "rock/X",
                                                 "rock/rock.00000"]


def test_a_class_folder_that_cannot_be_listed_is_one_line(tmp_path, monkeypatch):
    """EACCES on a class folder (injected: root lists anything): a DataSourceError naming
    the folder and the fix, not a PermissionError traceback."""
    from jaxgenre.data.folder import FolderSource

    root = _two_class_folder(tmp_path / "d")
    real_listdir = os.listdir

    def listdir(path):
        if os.path.basename(path) == "rock":
            raise PermissionError(13, "Permission denied", path)
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    with pytest.raises(sources.DataSourceError) as error:
        FolderSource(root, min_seconds=1.0, clip_seconds=1.0, progress=False)
    message = str(error.value)
    assert os.path.join(root, "rock") in message and "Permission denied" in message
    assert "\n" not in message and "chmod" in message


def test_a_file_name_with_a_newline_is_a_rejected_row_not_a_clip_id(tmp_path):
    """A clip id is written into reports and CSV rows line by line: a name holding a
    newline is listed with its reason, and the other clips are used."""
    from jaxgenre.data.folder import FolderSource

    for genre in ("blues", "jazz"):
        os.makedirs(tmp_path / genre)
        _tone(str(tmp_path / genre / f"{genre}.00000.wav"), 220.0, "WAV")
    _tone(str(tmp_path / "jazz" / "jazz\n00003.wav"), 330.0, "WAV")
    source = FolderSource(str(tmp_path), min_seconds=1.0, progress=False)
    assert [c.clip_id for c in source.clips] == ["blues/blues.00000", "jazz/jazz.00000"]
    assert source.report.rejected == [{"file": os.path.join("jazz", "jazz\n00003.wav"),
                                       "reason": "its name holds a control character (a "
                                                 "newline or tab?): rename it"}]
