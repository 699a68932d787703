"""The extractor (`jaxgenre.data.archive.extract`) against the second round of crafted
archives: extended tar headers declaring megabytes (tarfile would read them whole into
memory), tar streams cut off at a member boundary or with a wrong CRC (tarfile would stop
quietly and call the archive whole), headers that would move tarfile's walk (a global
pax `size`, sparse members, a pax record hidden in padding), whole-stream bombs,
folders a deep name implies (they count as members and as 4096 bytes each), names
deeper than 64 levels, links named '.', and NUL bytes in pax names. Each is one
`UserError` line naming the archive (and the member), with nothing left behind."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import time
import tracemalloc
import zipfile
import zlib

import pytest

from jaxgenre.data import archive
from jaxgenre.data.archive import Limits
from jaxgenre.errors import UserError

def _caps(**caps):
    """configs/base.py's archive caps with `caps` changed."""
    import dataclasses

    from jaxgenre.data.archive import Limits

    return dataclasses.replace(Limits.from_config(), **caps)



def _info(name, data=b"", type=tarfile.REGTYPE, linkname="", pax=None):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = type, linkname, len(data)
    if pax:
        info.pax_headers = pax
    return info, (data if type == tarfile.REGTYPE else None)


def _tar_bytes(members, fmt=tarfile.PAX_FORMAT, **kwargs) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, **kwargs) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _refused(archive_path, tmp_path, match, **kwargs) -> str:
    """`extract`'s one-line error; checks it names the archive and left nothing behind."""
    target = tmp_path / "out"
    before = set(os.listdir(tmp_path))
    with pytest.raises(UserError, match=match) as caught:
        archive.extract(archive_path, str(target), say=lambda _: None, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and os.path.basename(archive_path) in message
    assert set(os.listdir(tmp_path)) == before  # no staging folder, no target
    return message


def _header(name, type, size) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, type
    return info.tobuf(format=tarfile.USTAR_FORMAT)


# ------------------------------------------------------------ #2 extended-header bombs

@pytest.mark.parametrize("kind,size", [("pax", 32 << 20), ("gnu", 16 << 20)])
def test_an_extended_header_of_megabytes_is_refused_before_it_is_read(tmp_path, kind, size):
    """~32 KB of gzip declaring a 32 MiB pax header (or a 16 MiB GNU long name): tarfile
    would read it whole (several times its size at the peak); it is refused unread."""
    co = zlib.compressobj(6, zlib.DEFLATED, 31)
    typ = tarfile.XHDTYPE if kind == "pax" else tarfile.GNUTYPE_LONGNAME
    parts = [co.compress(_header("././@PaxHeader" if kind == "pax" else "././@LongLink",
                                 typ, size))]
    body = f"{size} comment=".encode() if kind == "pax" else b""
    left = size - len(body) - (1 if kind == "pax" else 0)
    parts.append(co.compress(body))
    while left > 0:
        parts.append(co.compress(b"x" * min(left, 1 << 20)))
        left -= 1 << 20
    parts.append(co.compress(b"\n" if kind == "pax" else b""))
    parts.append(co.compress(b"\0" * (-size % 512) + _header("f", tarfile.REGTYPE, 0)
                             + b"\0" * 1024) + co.flush())
    path = _write(tmp_path / f"bomb_{kind}.tar.gz", b"".join(parts))
    assert os.path.getsize(path) < 100_000
    tracemalloc.start()
    try:
        message = _refused(path, tmp_path, f"header of {size} bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak >> 20} MiB"
    assert "1048576" in message  # says the cap


# ------------------------------------------------------- #4 cut off, damaged streams

def _three_members():
    """A pax tar of three 4096-byte members, and where member 2's header starts."""
    raw = _tar_bytes([_info(f"jazz.0000{i}.wav", os.urandom(4096)) for i in range(3)])
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return raw, tar.getmembers()[1].offset


def _flushed(data: bytes) -> bytes:
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    return co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)  # no end marker, no CRC


def _bad_checksum(raw: bytes, at: int) -> bytes:
    data = bytearray(raw)
    data[at] ^= 1  # member 2's name: its header no longer matches its checksum
    return bytes(data)


def _wrong_crc(data: bytes) -> bytes:
    data = bytearray(data)
    data[-8] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("case,suffix,make", [
    ("gz flushed after member 1", "tar.gz", lambda raw, cut: _flushed(raw[:cut])),
    ("gz without its CRC and length", "tar.gz", lambda raw, cut: gzip.compress(raw)[:-8]),
    ("gz with a wrong CRC", "tar.gz", lambda raw, cut: _wrong_crc(gzip.compress(raw))),
    ("xz without its footer", "tar.xz", lambda raw, cut: lzma.compress(raw)[:-12]),
    ("whole bz2 of a tar ending after member 1", "tar.bz2",
     lambda raw, cut: bz2.compress(raw[:cut])),
    ("tar cut after member 1", "tar", lambda raw, cut: raw[:cut]),
    ("tar whose 2nd header has a bad checksum", "tar", _bad_checksum),
])
def test_a_stream_cut_off_or_damaged_is_refused(tmp_path, case, suffix, make):
    raw, cut = _three_members()
    path = _write(tmp_path / f"cut.{suffix}", make(raw, cut))
    message = _refused(path, tmp_path, "damaged or cut short")
    assert "jazz.0000" in message  # names the member it stopped after


def test_a_whole_tar_gz_still_unpacks_and_ends_where_it_should(tmp_path):
    raw, _ = _three_members()
    path = _write(tmp_path / "whole.tar.gz", gzip.compress(raw) + b"\0" * 64)  # gzip pads
    out = archive.extract(path, str(tmp_path / "out"), say=lambda _: None)
    assert sorted(os.listdir(out)) == [f"jazz.0000{i}.wav" for i in range(3)]
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for m in tar.getmembers():
            assert open(os.path.join(out, m.name), "rb").read() == tar.extractfile(m).read()


# ---------------------------------------------------- whole-stream bombs, walk benders

@pytest.mark.parametrize("case", ["zeros after the end block", "bulky pax headers"])
def test_the_whole_tar_stream_counts_against_the_ratio_cap(tmp_path, case):
    if case == "zeros after the end block":
        raw = _tar_bytes([_info("a.au", b"A" * 100)]) + b"\0" * (20 << 20)
    else:  # 40 members of 1 byte, each behind a 512 KiB pax comment
        raw = _tar_bytes([_info(f"f{i}", b"1", pax={"comment": "x" * (512 << 10)})
                          for i in range(40)])
    path = _write(tmp_path / "stream.tar.gz", gzip.compress(raw))
    assert os.path.getsize(path) < 100_000  # 20 MiB of stream: a ratio of over 200
    _refused(path, tmp_path, r"more than 100 times its own size.*max_ratio")


def _hidden_record() -> bytes:
    """A pax header whose declared size covers one record, with a second record (size=512)
    in its padding, which tarfile would still parse; then member 'a' (512 bytes to
    tarfile, none by its header) and the end blocks."""
    record, hidden = b"16 comment=abcd\n", b"12 size=512\n"
    block = (record + hidden).ljust(512, b"\0")
    member = _header("a", tarfile.REGTYPE, 0)
    return (_header("././@PaxHeader", tarfile.XHDTYPE, len(record)) + block + member
            + b"B" * 512 + b"\0" * 1024)


@pytest.mark.parametrize("case,make,match", [
    ("global pax size", lambda: _tar_bytes([_info("a.au", b"A" * 100)],
                                           pax_headers={"size": "10"}), "global pax header.*size"),
    ("sparse member", lambda: _tar_bytes([_info("s", type=tarfile.GNUTYPE_SPARSE)],
                                         fmt=tarfile.GNU_FORMAT), "sparse member 's'"),
    ("pax size not a number", lambda: _tar_bytes([_info("a", pax={"size": "1x"})]),
     "damaged or cut short.*size"),
    ("pax record in the padding", _hidden_record, "damaged or cut short.*padding"),
])
def test_headers_that_would_move_tarfiles_walk_are_refused(tmp_path, case, make, match):
    _refused(_write(tmp_path / "walk.tar", make()), tmp_path, match)


# --------------------------------------------------------- #3 folders a name implies

def _three_in_two_folders(tmp_path, kind):
    files = [("g/a", b"1" * 10), ("g/b", b"2" * 10), ("h/c", b"3" * 10)]
    if kind == "zip":
        path = tmp_path / "two.zip"
        with zipfile.ZipFile(path, "w") as z:
            for name, data in files:
                z.writestr(name, data)
        return str(path)
    return _write(tmp_path / "two.tar.gz",
                  gzip.compress(_tar_bytes([_info(n, d) for n, d in files])))


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_implied_folders_count_as_members_and_as_4096_bytes(tmp_path, kind):
    path = _three_in_two_folders(tmp_path, kind)
    # 3 files + folders g and h: 5 members; 30 bytes + 2 x 4096 for the folders: 8222
    _refused(path, tmp_path, "more than 4 members.*max_members.*'h/c'",
             limits=_caps(max_members=4))
    _refused(path, tmp_path, "more than 8221 bytes.*max_bytes.*'h/c'",
             limits=_caps(max_bytes=8221))
    out = archive.extract(path, str(tmp_path / "out"), say=lambda _: None,
                          limits=_caps(max_members=5, max_bytes=8222))
    assert open(os.path.join(out, "h", "c"), "rb").read() == b"3" * 10


def test_deep_empty_files_stop_at_the_member_cap(tmp_path):
    """The reviewer's 3.9 KB archive, scaled: 200 empty files 60 folders deep each."""
    raw = _tar_bytes([_info(f"{m}/" + "a/" * 59 + "f") for m in range(200)])
    path = _write(tmp_path / "dirs.tar.gz", gzip.compress(raw))
    start = time.monotonic()
    _refused(path, tmp_path, "more than 200 members", limits=_caps(max_members=200,
                                                                  max_bytes=10**6))
    assert time.monotonic() - start < 5


# ------------------------------------------------------------ #9 depth, #15, #8

def test_a_member_deeper_than_64_levels_is_one_line(tmp_path):
    path = tmp_path / "deep.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a/" * 1500 + "f", b"1")
    _refused(str(path), tmp_path, "1501 levels deep; at most 64")
    ok = _write(tmp_path / "d64.tar", _tar_bytes([_info("a/" * 63 + "f", b"1")]))
    out = archive.extract(ok, str(tmp_path / "o64"), say=lambda _: None)
    assert open(os.path.join(out, *["a"] * 63, "f"), "rb").read() == b"1"
    too = _write(tmp_path / "d65.tar", _tar_bytes([_info("a/" * 64 + "f", b"1")]))
    _refused(too, tmp_path, "65 levels deep; at most 64")


@pytest.mark.parametrize("members", [
    [_info(".", type=tarfile.SYMTYPE, linkname="x")],
    [_info("f", b"1"), _info(".", type=tarfile.LNKTYPE, linkname="f")]])
def test_a_link_named_dot_is_one_line_naming_it(tmp_path, members):
    message = _refused(_write(tmp_path / "dot.tar", _tar_bytes(members)), tmp_path,
                       "link.*no name")
    assert "'.'" in message


@pytest.mark.parametrize("members", [[_info("ok", b"1", pax={"path": "a\x00b"})],
                                     [_info("l", type=tarfile.SYMTYPE, linkname="x",
                                            pax={"linkpath": "a\x00b"})]])
def test_a_nul_in_a_pax_name_is_one_line_also_from_the_cli(tmp_path, capsys, members):
    from jaxgenre.data import tfds_gtzan

    path = _write(tmp_path / "nul.tar", _tar_bytes(members))
    message = _refused(path, tmp_path, r"a\\x00b.*NUL byte")
    assert "would land outside" not in message
    code = tfds_gtzan.main([f"--from={path}", f"--tfds_dir={tmp_path / 'tfds'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_tarfile_is_fed_only_what_it_should_be_reading(tmp_path):
    """Were tarfile's walk to part from TarStream's (it reads on past member 'a''s data
    as if it were a huge header), it gets at most one read-ahead buffer more, then an
    error: never the rest of the archive."""
    from types import SimpleNamespace

    from jaxgenre.data import tar_stream

    raw = _tar_bytes([_info("a", b"A" * 100), _info("b", os.urandom(1 << 20))])
    u = SimpleNamespace(archive="x.tar", ratio_cap=1 << 30, limits=Limits.from_config(),
                        damaged=lambda where, e: UserError(f"{where}: {e}"))
    stream = tar_stream.TarStream(io.BytesIO(raw), u)
    with tarfile.open(fileobj=stream, mode="r|", bufsize=tar_stream.BUFSIZE) as tar:
        member = tar.next()
        stream.take(member)
        assert tar.extractfile(member).read() == b"A" * 100
        handed = stream.pos
        with pytest.raises(UserError, match="tarfile reads past"):
            for _ in range(len(raw) // tar_stream.BUFSIZE + 2):  # the whole archive, and on
                handed += len(stream.read(tar_stream.BUFSIZE))
    # member a's data ends at byte 1024 (pax-free ustar header + one data block)
    assert handed == 1024 + tar_stream.BUFSIZE < len(raw)
