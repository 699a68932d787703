"""`data.source=fma` against a local HTTP server: a tiny FMA layout (fma_metadata.zip
with the real tracks.csv header shape, fma_small.zip with mp3s written by soundfile),
verified by sha1, unpacked, labelled by genre_top, split by set.split, trained on; bad
mp3s are listed in the data report, never a crash."""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest
import soundfile as sf

from configs import base
from jaxgenre.data import fma
from jaxgenre.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SR = 22050
GENRES = ("Folk", "Hip-Hop", "Rock")
SPLITS = ("training", "training", "training", "validation", "test")


def _tracks():
    """(track_id, genre_top, split, subset, what the mp3 is) rows of the fixture."""
    rows, tid = [], 2
    for g, genre in enumerate(GENRES):
        for split in SPLITS:
            rows.append((tid, genre, split, "small", ("tone", 110.0 * (g + 1))))
            tid += 1
    rows += [(900, "Rock", "training", "small", ("corrupt", None)),
             (901, "Folk", "training", "small", ("short", None)),
             (902, "Rock", "test", "small", ("absent", None)),
             (903, "Rock", "training", "medium", ("tone", 440.0)),  # not in small
             (904, "", "training", "small", ("tone", 440.0))]  # no top-level genre
    return rows


def _tracks_csv(rows) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["", "album", "set", "set", "track", "track"])
    w.writerow(["", "title", "split", "subset", "genre_top", "title"])
    w.writerow(["track_id", "", "", "", "", ""])
    for tid, genre, split, subset, _ in rows:
        w.writerow([tid, "an album", split, subset, genre, f"song {tid}"])
    return out.getvalue()


def _mp3(kind, freq) -> bytes:
    if kind == "corrupt":
        return b"ID3\x03\x00\x00\x00\x00\x00\x00 not an mp3 at all" * 20
    seconds = 1.0 if kind == "short" else 4.0
    t = np.arange(int(seconds * SR)) / SR
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * (freq or 300.0) * t)).astype(np.float32), SR,
             format="MP3")
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fma_mirror")
    rows = _tracks()
    with zipfile.ZipFile(folder / "fma_metadata.zip", "w") as z:
        z.writestr("fma_metadata/tracks.csv", _tracks_csv(rows))
    with zipfile.ZipFile(folder / "fma_small.zip", "w") as z:
        for tid, _, _, subset, (kind, freq) in rows:
            if kind != "absent" and subset == "small":
                z.writestr(os.path.relpath(fma.audio_path("fma_small", tid)), _mp3(kind, freq))
    sha1 = {name: hashlib.sha1((folder / f"fma_{name}.zip").read_bytes()).hexdigest()
            for name in ("metadata", "small")}
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", sha1
    httpd.shutdown()


def test_read_tracks_and_paths_by_hand(tmp_path):
    path = tmp_path / "tracks.csv"
    path.write_text(_tracks_csv(_tracks()))
    tracks = fma.read_tracks(str(path))
    assert len(tracks) == 20 and tracks[0] == fma.Track(2, "Folk", "training", "small")
    assert fma.audio_path("/a", 2) == os.path.join("/a", "000", "000002.mp3")
    assert fma.audio_path("/a", 123456) == os.path.join("/a", "123", "123456.mp3")


def test_a_damaged_tracks_csv_names_the_line(tmp_path):
    path = tmp_path / "tracks.csv"
    path.write_text(_tracks_csv(_tracks()) + "905,an album,training\n")  # cut short
    with pytest.raises(ValueError, match="tracks.csv' line 24 has 3 columns, not 6"):
        fma.read_tracks(str(path))


@pytest.mark.parametrize("content, reason", [
    (b"", "ends before its two header rows"),
    (b"track_id,a\n", "ends before its two header rows"),
    (b"track_id,\xff\xfe\n,,split\n", "codec can't decode"),
    (b'track_id,a\n,"' + b"x" * 200_000 + b'"\n', "field larger than field limit")])
def test_a_tracks_csv_that_is_no_csv_is_one_line_naming_it(tmp_path, content, reason):
    path = tmp_path / "tracks.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match=f"{path}. is not FMA.s tracks.csv .*{reason}"):
        fma.read_tracks(str(path))


@pytest.mark.slow  # a run after the download, ~17 s
def test_fma_is_fetched_labelled_split_and_trained_on(tmp_path, served):
    mirror, sha1 = served
    result = subprocess.run(
        [sys.executable, "launch.py", "--config=configs/spectralcnn_mel.py",
         f"--workdir={tmp_path / 'run'}", "--config.data.source=fma",
         f"--config.data.home={tmp_path / 'home'}", f"--config.data.fma.mirrors=('{mirror}',)",
         f"--config.data.fma.sha1.metadata={sha1['metadata']}",
         f"--config.data.fma.sha1.small={sha1['small']}",
         "--config.data.min_seconds=3", "--config.data.clip_seconds=4",
         "--config.data.segment_seconds=1", "--config.features.n_mels=32",
         "--config.train.epochs=1", "--config.train.batch_size=4", "--config.eval.batch_size=4",
         "--config.eval.plots=False"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["class_names"] == list(GENRES) and report["usable_clips"] == 15
    reasons = {r["file"]: r["reason"] for r in report["rejected"]}
    assert set(reasons) == {os.path.join("000", "000900.mp3"), os.path.join("000", "000901.mp3"),
                            os.path.join("000", "000902.mp3")}
    assert "too short" in reasons[os.path.join("000", "000901.mp3")]
    assert "not in the archive" in reasons[os.path.join("000", "000902.mp3")]
    # The official split (set.split), the default for FMA: 3 / 1 / 1 tracks per genre.
    assert "split: train 9 clips / 36 segments, valid 3 clips / 12 segments, test 3 clips" \
        in result.stdout
    assert json.loads((tmp_path / "run" / "results.json").read_text())["data"] == "fma"
