"""`data.source=gtzan` end to end against a local HTTP server: a tiny GTZAN-layout
genres.tar.gz (real .au files) is fetched from the second mirror after the first 404s,
verified by its sha256, unpacked, reported, and trained on through launch.py; a wrong
checksum is a one-line usage error (exit 2)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tarfile
import threading

import pytest

from configs import base
from conftest import write_gtzan_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, sha256) of a tiny genres.tar.gz: 3 genres, the original's .au layout."""
    folder = tmp_path_factory.mktemp("gtzan_src")
    write_gtzan_folder(folder, "original", seconds=4.0)
    archive = folder / "genres.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder / "genres", arcname="genres")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield (f"http://127.0.0.1:{httpd.server_address[1]}",
           hashlib.sha256(archive.read_bytes()).hexdigest())
    httpd.shutdown()


def _launch(tmp_path, base_url, sha256, *extra):
    urls = f"('{base_url}/missing.tar.gz', '{base_url}/genres.tar.gz')"
    return subprocess.run(
        [sys.executable, "launch.py", "--config=configs/spectralcnn_mel.py",
         f"--workdir={tmp_path / 'run'}", "--config.data.source=gtzan",
         f"--config.data.home={tmp_path / 'home'}", f"--config.data.gtzan.urls={urls}",
         f"--config.data.gtzan.sha256={sha256}", "--config.data.min_seconds=3",
         "--config.data.clip_seconds=4", "--config.data.segment_seconds=1",
         "--config.data.fractions=(0.34, 0.33, 0.33)", "--config.features.n_mels=32",
         "--config.train.epochs=1", "--config.train.batch_size=4", "--config.eval.batch_size=4",
         "--config.eval.plots=False", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow  # a run after the download, ~17 s; the checksum and limit tests stay in the default suite
def test_gtzan_is_fetched_verified_unpacked_and_trained_on(tmp_path, served):
    base_url, sha256 = served
    result = _launch(tmp_path, base_url, sha256)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "home" / "genres.tar.gz").exists()
    assert (tmp_path / "home" / "gtzan" / "genres" / "blues" / "blues.00000.au").exists()
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["usable_clips"] == 7 and len(report["rejected"]) == 4  # conftest's bad files
    assert json.loads((tmp_path / "run" / "results.json").read_text())["data"] == "gtzan"


def test_a_wrong_checksum_is_a_usage_error(tmp_path, served):
    base_url, _ = served
    result = _launch(tmp_path, base_url, "0" * 64)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
    assert len(line) == 1 and "could not fetch GTZAN" in line[0] and "missing.tar.gz: HTTP 404" \
        in line[0] and "wrong file (sha256" in line[0]
    assert not (tmp_path / "home" / "genres.tar.gz").exists()


def test_the_configs_download_and_archive_limits_reach_the_gtzan_source(tmp_path, served):
    """config.data.download.* and config.data.archive.* → create_source → fetch_gtzan."""
    from jaxgenre.data import sources
    from jaxgenre.errors import UserError

    base_url, sha256 = served
    config = base.get_config()
    config.data.update(source="gtzan", home=str(tmp_path / "home"))
    config.data.gtzan.update(urls=(f"{base_url}/genres.tar.gz",), sha256=sha256)
    config.data.download.max_bytes = 1000  # the tarball is far bigger; its size is not pinned
    with pytest.raises(UserError, match=r"sent more than 1000 bytes \(config.data.download."
                                        r"max_bytes\)|announces \d+ bytes, more than 1000"):
        sources.create_source(config, progress=False)
    config.data.download.max_bytes = 2**30
    config.data.archive.max_members = 5
    with pytest.raises(UserError, match=r"genres.tar.gz' has more than 5 members \(config.data."
                                        r"archive.max_members\)"):
        sources.create_source(config, progress=False)
    assert os.listdir(tmp_path / "home") == ["genres.tar.gz"]  # verified; nothing unpacked
