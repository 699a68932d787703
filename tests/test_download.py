"""data.download against a real HTTP server on 127.0.0.1 that the tests start: mirrors,
resume after a cut connection, a server ignoring Range, checksum mismatch, a silent
server, a verified copy already there, and archives that try to write outside; hostile
servers (no Content-Length, an endless body, a byte at a time in the body, a header
line or a chunk-size line, over http and https, redirects elsewhere or in a loop), a
user's wrong file or a folder at the final path, names with NUL, and two processes
fetching one asset at once."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import zipfile

import urllib.error
import urllib.request

import pytest

from jaxgenre.data import download

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PAYLOAD = os.urandom(300_000)
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /<mode>/file.bin. Modes: ok (Range honoured), norange (Range
    ignored), cut (the first response stops half-way), missing (404), silent (never
    answers within the client's timeout), nolength (no Content-Length, then zeros
    without end), biglength (announces 100 MB), trickle (a byte every 0.1 s), slow
    (PAYLOAD in 10 parts over ~1 s), redirect-ftp / redirect-ok (302 elsewhere), loop
    (302 to itself), trickle-headers / trickle-chunk (a header line or a chunk-size line
    that grows by a byte every 0.2 s, for 8 s)."""
    requests = []
    cut_done = set()
    sent = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        mode = self.path.strip("/").split("/")[0]
        _Handler.requests.append((self.path, self.headers.get("Range")))
        if mode == "missing":
            self.send_error(404)
            return
        if mode == "silent":
            time.sleep(3)
            return
        if mode in ("trickle-headers", "trickle-chunk"):
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-A: " if mode == "trickle-headers" else
                             b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=")
            try:
                for _ in range(40):
                    self.wfile.flush()
                    time.sleep(0.2)
                    self.wfile.write(b"a")
            except OSError:  # the client hung up
                pass
            return
        if mode == "loop":
            self.send_response(302)
            self.send_header("Location", self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode.startswith("redirect-"):
            self.send_response(302)
            self.send_header("Location", {"redirect-ftp": "ftp://127.0.0.1:1/file.bin",
                                          "redirect-ok": "/ok/file.bin"}[mode])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if mode in ("nolength", "biglength", "trickle"):
            self.send_response(200)
            if mode == "biglength":
                self.send_header("Content-Length", str(100_000_000))
            self.end_headers()
            try:
                for _ in range(400 if mode == "trickle" else 1000):  # up to 64 MB of zeros
                    self.wfile.write(b"\0" * (1 if mode == "trickle" else 1 << 16))
                    self.wfile.flush()
                    _Handler.sent += 1 if mode == "trickle" else 1 << 16
                    if mode == "trickle":
                        time.sleep(0.1)
            except OSError:  # the client hung up: what it should do
                pass
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and mode != "norange":
            start = int(rng.split("=")[1].split("-")[0])
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "slow":
            for k in range(10):
                self.wfile.write(body[k * len(body) // 10:(k + 1) * len(body) // 10])
                self.wfile.flush()
                time.sleep(0.1)
            return
        if mode == "cut" and self.path not in _Handler.cut_done:
            _Handler.cut_done.add(self.path)
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the connection drops half-way
            return
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


# A throwaway self-signed certificate for 127.0.0.1 (P-256, valid 2000-2100), made for
# these tests with `openssl req` / `openssl ca -selfsign`; the client trusts it through
# $SSL_CERT_FILE, which OpenSSL reads whenever a default context is made.
TEST_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgvcscyozYwvm6LV+Z
7Q4NHvgHSmEC6gWGPZohC4jdNaihRANCAAQ4LE+F3KvkIZmYRL5HwRdnFw0QMqYs
eDYlQWDEriGDDSzlv0I+fhGWkznIyYpCAENr4TufNlvZpVERWMPn7HkY
-----END PRIVATE KEY-----
"""
TEST_CERT = """-----BEGIN CERTIFICATE-----
MIIBWzCCAQKgAwIBAgIBATAKBggqhkjOPQQDAjAUMRIwEAYDVQQDDAkxMjcuMC4w
LjEwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBQxEjAQBgNVBAMM
CTEyNy4wLjAuMTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABDgsT4Xcq+QhmZhE
vkfBF2cXDRAypix4NiVBYMSuIYMNLOW/Qj5+EZaTOcjJikIAQ2vhO582W9mlURFY
w+fseRijQzBBMA8GA1UdEQQIMAaHBH8AAAEwDwYDVR0TAQH/BAUwAwEB/zAdBgNV
HQ4EFgQUVjog/2X4VoMmic3rF1W7Vf696E0wCgYIKoZIzj0EAwIDRwAwRAIgWJpe
PwHJnpQJ5dsQgEggU1iAPgwa7lOqlP3QVCaaLDECIHV/7UJaMCmd1KygXPbouDnW
OdXcKNd7iGIehUQer9pG
-----END CERTIFICATE-----
"""


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    (folder / "key.pem").write_text(TEST_KEY)
    (folder / "cert.pem").write_text(TEST_CERT)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", str(folder / "cert.pem")
    httpd.shutdown()


@pytest.fixture(autouse=True)
def _fresh_log():
    _Handler.requests.clear()
    _Handler.sent = 0


def _asset(*urls, sha256=DIGEST, size=None):
    return download.Asset(name="test blob", file="file.bin", urls=urls, sha256=sha256, size=size)


def test_fetches_verifies_and_does_not_fetch_again(server, tmp_path):
    path = download.fetch(_asset(f"{server}/ok/file.bin", size=len(PAYLOAD)), str(tmp_path),
                          progress=False)
    assert open(path, "rb").read() == PAYLOAD and not os.path.exists(path + ".part")
    _Handler.requests.clear()
    assert download.fetch(_asset(f"{server}/ok/file.bin"), str(tmp_path)) == path
    assert _Handler.requests == []  # a verified copy: no request at all


def test_first_mirror_404_second_works(server, tmp_path):
    path = download.fetch(_asset(f"{server}/missing/file.bin", f"{server}/ok/file.bin"),
                          str(tmp_path), progress=False)
    assert open(path, "rb").read() == PAYLOAD
    assert [p for p, _ in _Handler.requests] == ["/missing/file.bin", "/ok/file.bin"]


def test_a_cut_connection_is_resumed_with_range(server, tmp_path):
    path = download.fetch(_asset(f"{server}/cut/file.bin"), str(tmp_path), progress=False)
    assert open(path, "rb").read() == PAYLOAD
    ranges = [r for _, r in _Handler.requests]
    assert ranges[0] is None and ranges[1] == f"bytes={len(PAYLOAD) // 2}-"


def test_a_server_ignoring_range_restarts_cleanly(server, tmp_path):
    with open(tmp_path / "file.bin.part", "wb") as f:  # left by an interrupted run
        f.write(PAYLOAD[:1000])
    path = download.fetch(_asset(f"{server}/norange/file.bin"), str(tmp_path), progress=False)
    assert open(path, "rb").read() == PAYLOAD  # not 1000 bytes + the whole file again
    assert _Handler.requests[0][1] == "bytes=1000-"


def test_checksum_mismatch_leaves_nothing_under_the_final_name(server, tmp_path):
    with pytest.raises(download.DownloadError, match=r"could not fetch test blob: .*wrong file "
                       r"\(sha256 [0-9a-f]{64}, expected 0{64}\).*put it at"):
        download.fetch(_asset(f"{server}/ok/file.bin", sha256="0" * 64), str(tmp_path),
                       progress=False)
    assert os.listdir(tmp_path) == []


def test_a_silent_server_times_out_with_a_clear_message(server, tmp_path):
    start = time.perf_counter()
    with pytest.raises(download.DownloadError, match="silent/file.bin: no answer"):
        download.fetch(_asset(f"{server}/silent/file.bin"), str(tmp_path), timeout=0.5,
                       progress=False)
    assert time.perf_counter() - start < 2.5


def test_local_paths_and_file_urls_are_mirrors_too(tmp_path):
    source = tmp_path / "mine.bin"
    source.write_bytes(PAYLOAD)
    home = tmp_path / "home"
    assert open(download.fetch(_asset(str(tmp_path / "absent.bin"), source.as_uri()),
                               str(home)), "rb").read() == PAYLOAD
    os.remove(home / "file.bin")
    assert download.fetch(_asset(str(source)), str(home)) == str(home / "file.bin")


def test_data_home_order(monkeypatch, tmp_path):
    monkeypatch.setenv(download.ENV_HOME, str(tmp_path / "env"))
    assert download.data_home(str(tmp_path / "cfg")) == str(tmp_path / "cfg")
    assert download.data_home() == str(tmp_path / "env")
    monkeypatch.delenv(download.ENV_HOME)
    assert download.data_home().endswith(os.path.join(".cache", "jaxgenre"))


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)


def test_archives_unpack_via_a_staging_folder(tmp_path):
    archive = tmp_path / "genres.tar.gz"
    _tar(archive, [("genres/blues/blues.00000.au", "file", b"x" * 10),
                   ("genres/blues/link.au", "link", "blues.00000.au")])
    target = download.extract(str(archive), str(tmp_path / "out"))
    assert (tmp_path / "out" / "genres" / "blues" / "blues.00000.au").read_bytes() == b"x" * 10
    assert sorted(os.listdir(tmp_path)) == ["genres.tar.gz", "out"] and target.endswith("out")
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("fma_small/000/000002.mp3", b"mp3")
    download.extract(str(z), str(tmp_path / "zout"))
    assert (tmp_path / "zout" / "fma_small" / "000" / "000002.mp3").read_bytes() == b"mp3"


@pytest.mark.parametrize("members", [
    [("../evil", "file", b"pwned")],
    [("/tmp/evil_abs", "file", b"pwned")],
    [("genres/escape", "link", "../../outside")],
    [("genres/abs_link", "link", "/etc/passwd")],
])
def test_members_escaping_the_target_are_refused(tmp_path, members):
    archive = tmp_path / "bad.tar.gz"
    _tar(archive, [("genres/ok.au", "file", b"ok")] + members)
    with pytest.raises(download.UnsafeArchive, match="bad.tar.gz' has a .*refused"):
        download.extract(str(archive), str(tmp_path / "out" / "x"))
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "x").exists()
    assert os.listdir(tmp_path / "out") == []  # no staging folder left behind


def test_a_zip_member_escaping_is_refused(tmp_path):
    z = tmp_path / "bad.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("../evil.txt", b"pwned")
    with pytest.raises(download.UnsafeArchive, match="'../evil.txt'"):
        download.extract(str(z), str(tmp_path / "out"))
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_a_body_without_content_length_is_capped_at_the_assets_size(server, tmp_path):
    start = time.perf_counter()
    with pytest.raises(download.DownloadError, match="nolength/file.bin: sent more than "
                       "the asset's 300000 bytes"):
        download.fetch(_asset(f"{server}/nolength/file.bin", size=len(PAYLOAD)), str(tmp_path),
                       progress=False)
    assert time.perf_counter() - start < 5
    assert os.listdir(tmp_path) == []  # the over-long .part is not kept to be resumed
    assert _Handler.sent < 20_000_000  # of the 64 MB the server would have sent


def test_an_unknown_size_is_capped_at_the_configured_maximum(server, tmp_path):
    with pytest.raises(download.DownloadError, match=r"sent more than 1000000 bytes \(config"
                       r".data.download.max_bytes\)"):
        download.fetch(_asset(f"{server}/nolength/file.bin"), str(tmp_path), progress=False,
                       max_bytes=1_000_000)
    with pytest.raises(download.DownloadError, match="announces 100000000 bytes, more than"):
        download.fetch(_asset(f"{server}/biglength/file.bin", size=len(PAYLOAD)),
                       str(tmp_path), progress=False)
    assert _Handler.sent < 20_000_000


def test_a_trickling_server_meets_the_deadline(server, tmp_path):
    start = time.perf_counter()
    with pytest.raises(download.DownloadError, match="trickle/file.bin: not done within the "
                       "1 s deadline"):
        download.fetch(_asset(f"{server}/trickle/file.bin"), str(tmp_path), timeout=5.0,
                       deadline=1.0, progress=False)
    assert time.perf_counter() - start < 3  # one byte every 0.1 s never trips the 5 s timeout


def test_redirects_only_to_http_and_never_down_from_https(server, tmp_path):
    with pytest.raises(download.DownloadError, match="redirect-ftp/file.bin: redirected to "
                       "'ftp://127.0.0.1:1/file.bin', refused: only http and https"):
        download.fetch(_asset(f"{server}/redirect-ftp/file.bin"), str(tmp_path), progress=False)
    path = download.fetch(_asset(f"{server}/redirect-ok/file.bin"), str(tmp_path),
                          progress=False)
    assert open(path, "rb").read() == PAYLOAD  # http -> http is followed
    handler = download.SafeRedirectHandler()
    up = handler.redirect_request(urllib.request.Request("http://a.example/f"), None, 302,
                                  "Found", {}, "https://b.example/f")
    assert up.full_url == "https://b.example/f"
    for source, target in [("https://a.example/f", "http://a.example/f"),
                           ("https://a.example/f", "file:///etc/passwd")]:
        with pytest.raises(urllib.error.URLError, match="refused"):
            handler.redirect_request(urllib.request.Request(source), None, 302, "Found", {},
                                     target)


def test_a_users_wrong_file_at_the_final_path_is_renamed_aside(server, tmp_path, capsys):
    (tmp_path / "file.bin").write_bytes(b"my own notes")
    path = download.fetch(_asset(f"{server}/ok/file.bin"), str(tmp_path), progress=False)
    assert open(path, "rb").read() == PAYLOAD
    assert (tmp_path / "file.bin.mismatch").read_bytes() == b"my own notes"  # never deleted
    err = capsys.readouterr().err
    assert "file.bin.mismatch" in err and "sha256" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "file.bin").write_bytes(b"another")
    download.fetch(_asset(f"{server}/ok/file.bin"), str(tmp_path), progress=False)
    assert (tmp_path / "file.bin.mismatch").read_bytes() == b"my own notes"
    assert (tmp_path / "file.bin.mismatch.1").read_bytes() == b"another"


def test_a_file_name_that_is_no_file_name_is_one_line(tmp_path):
    for name in ("", "a/b", "..", "a\x00b"):
        asset = download.Asset(name="weights", file=name, urls=("http://127.0.0.1:1/",))
        with pytest.raises(download.DownloadError, match="not a file name"):
            download.fetch(asset, str(tmp_path), progress=False)
    asset = download.Asset(name="weights", file="w.bin", urls=("http://127.0.0.1:1/",))
    with pytest.raises(download.DownloadError, match="NUL.*config.data.home"):
        download.fetch(asset, str(tmp_path / "a\x00b"), progress=False)
    assert os.listdir(tmp_path) == []


_FETCHER = r"""
import os, sys, time
from jaxgenre.data import download
ready = sys.argv[3]
open(ready + sys.argv[4], "w").close()
while not all(os.path.exists(ready + k) for k in "12"):
    time.sleep(0.01)
asset = download.Asset(name="test blob", file="file.bin", urls=(sys.argv[1],), sha256=sys.argv[5])
print(download.fetch(asset, sys.argv[2], progress=False))
"""


def test_two_processes_fetching_one_asset(server, tmp_path):
    home = str(tmp_path / "home")
    racers = [subprocess.Popen([sys.executable, "-c", _FETCHER, f"{server}/slow/file.bin", home,
                                str(tmp_path / "ready"), k, DIGEST], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in "12"]
    results = [r.communicate(timeout=60) + (r.returncode,) for r in racers]
    for out, err, code in results:
        assert code == 0 and out.strip() == os.path.join(home, "file.bin"), err[-2000:]
    assert sum("waiting for another process" in err for _, err, _ in results) == 1
    assert len(_Handler.requests) == 1  # the second used the verified file
    assert open(os.path.join(home, "file.bin"), "rb").read() == PAYLOAD
    assert os.listdir(home) == ["file.bin"]  # no .part, no lock file left


@pytest.mark.parametrize("mode", ["trickle-headers", "trickle-chunk", "https"])
def test_the_deadline_holds_for_header_and_chunk_lines(server, tls_server, tmp_path, mode,
                                                       monkeypatch):
    base = server
    if mode == "https":  # the same over TLS: the cut reaches a read inside the TLS socket
        base, mode = tls_server[0], "trickle-headers"
        monkeypatch.setenv("SSL_CERT_FILE", tls_server[1])
        path = download.fetch(_asset(f"{base}/ok/file.bin"), str(tmp_path / "ok"),
                              progress=False)
        assert open(path, "rb").read() == PAYLOAD  # https itself works
    start = time.perf_counter()
    with pytest.raises(download.DownloadError, match=rf"{mode}/file.bin: not done within the "
                       r"1 s deadline \(config.data.download.deadline_seconds\)"):
        download.fetch(_asset(f"{base}/{mode}/file.bin"), str(tmp_path), timeout=0.5,
                       deadline=1.0, progress=False)
    # every wait is under the 0.5 s timeout: only the deadline can stop it (the server
    # would go on for 8 s, and http.client's header limits allow far more)
    assert time.perf_counter() - start < 2.0
    assert not os.path.exists(tmp_path / "file.bin.part")  # empty: nothing to resume


def test_a_redirect_loop_is_one_line(server, tmp_path):
    with pytest.raises(download.DownloadError) as raised:
        download.fetch(_asset(f"{server}/loop/file.bin"), str(tmp_path), progress=False)
    text = str(raised.value)
    assert "\n" not in text and "loop/file.bin: redirect loop" in text, text
    assert 1 < len(_Handler.requests) <= 11  # urllib stops it after at most 10 redirects


def test_a_folder_at_the_final_path_is_refused_before_fetching(server, tmp_path):
    (tmp_path / "file.bin").mkdir()
    with pytest.raises(download.DownloadError, match=r"file.bin is a folder, not test blob: "
                       r"move it away"):
        download.fetch(_asset(f"{server}/ok/file.bin"), str(tmp_path), progress=False)
    assert _Handler.requests == [] and os.listdir(tmp_path) == ["file.bin"]


def test_a_lock_path_with_nul_is_an_os_error_as_documented(tmp_path):
    from jaxgenre.data import filelock
    with pytest.raises(OSError, match="NUL"):  # every caller handles OSError in one line
        with filelock.exclusive(str(tmp_path / "a\0b.lock"), waiting="", say=print):
            pass
    assert os.listdir(tmp_path) == []
