"""The one archive extractor (`jaxgenre.data.archive`, also `download.extract`) against
archives built here to attack it: links that cycle or lead out, names the file system
cannot hold, a file and then a folder of the same name, cut-short and damaged archives,
zip and tar bombs, too many members, a tar that `zipfile.is_zipfile` takes for a zip,
the unpacked folder's mode, and two processes unpacking one archive at once. Each
failure is one `UserError` line naming the archive and the member, with nothing left
behind; the limits come from `config.data.archive` through every caller."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from configs import base
from jaxgenre.data import download
from jaxgenre.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

def _caps(**caps):
    """configs/base.py's archive caps with `caps` changed."""
    import dataclasses

    from jaxgenre.data.archive import Limits

    return dataclasses.replace(Limits.from_config(), **caps)



def _tar(path, members, mode="w:gz"):
    """A tar of (name, kind, data): kind file (data: bytes), dir, symlink or hardlink
    (data: the link target)."""
    with tarfile.open(path, mode) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE}[kind]
            info.linkname = data or ""
            tar.addfile(info)
    return str(path)


def _refused(archive, target, match, **kwargs) -> str:
    """The one-line error `extract` raises; checks it names the archive and that nothing
    was left beside the target (no staging folder, no target)."""
    before = set(os.listdir(os.path.dirname(target)))
    with pytest.raises(UserError, match=match) as caught:
        download.extract(archive, target, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and os.path.basename(archive) in message
    assert set(os.listdir(os.path.dirname(target))) == before  # nothing left behind
    return message


def test_a_symlink_cycle_with_a_file_under_it_is_one_line(tmp_path):
    archive = _tar(tmp_path / "cycle.tar.gz", [("a", "symlink", "b"), ("b", "symlink", "a"),
                                               ("a/x", "file", b"x")])
    message = _refused(archive, str(tmp_path / "out"), "'a/x'")
    assert "link 'a'" in message


def test_a_file_written_through_a_link_to_a_folder_inside_is_refused(tmp_path):
    # the link itself points inside, but what is written under it must not follow it
    archive = _tar(tmp_path / "via.tar.gz", [("d", "dir", None), ("l", "symlink", "d"),
                                             ("l/x", "file", b"x")])
    _refused(archive, str(tmp_path / "out"), "'l/x'.*link 'l'")


def test_a_300_character_name_is_one_line(tmp_path):
    archive = _tar(tmp_path / "long.tar.gz", [("ok.au", "file", b"1"),
                                              ("x" * 300, "file", b"x")])
    message = _refused(archive, str(tmp_path / "out"), "name of 300 bytes")
    assert len(message) < 400  # the name is shortened in the message


def test_a_file_then_a_folder_of_the_same_name_is_one_line(tmp_path):
    archive = _tar(tmp_path / "clash.tar.gz", [("a", "file", b"x"), ("a/b", "file", b"y")])
    _refused(archive, str(tmp_path / "out"), "'a/b'.*'a' is a file")
    archive = _tar(tmp_path / "clash2.tar.gz", [("a/b", "file", b"y"), ("a", "file", b"x")])
    _refused(archive, str(tmp_path / "out"), "'a'.*both a folder and a file")


def test_a_truncated_tar_gz_is_one_line(tmp_path):
    whole = _tar(tmp_path / "whole.tar.gz",
                 [(f"genres/f{i}.au", "file", os.urandom(2000)) for i in range(50)])
    data = open(whole, "rb").read()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[:len(data) // 2])
    message = _refused(str(cut), str(tmp_path / "out"), "damaged or cut short")
    assert "genres/f" in message  # names the member it stopped at


def test_a_zip_with_a_bad_crc_is_one_line(tmp_path):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("genres/a.au", b"A" * 1000)
    data = bytearray(path.read_bytes())
    data[data.index(b"A" * 1000) + 500] = ord("B")  # the stored bytes no longer match the CRC
    path.write_bytes(bytes(data))
    _refused(str(path), str(tmp_path / "out"), "damaged or cut short in member 'genres/a.au'")


def test_a_zip_bomb_is_stopped_by_the_ratio_cap(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\0" * (20 << 20))  # 20 MiB in ~20 KB: a ratio of ~1000
    assert os.path.getsize(bomb) < 40_000
    _refused(str(bomb), str(tmp_path / "out"), "'zeros.bin'.*100 times.*max_ratio")


def test_a_tar_gz_bomb_is_stopped_by_the_overall_ratio_cap(tmp_path):
    bomb = _tar(tmp_path / "bomb.tar.gz", [(f"z{i}", "file", b"\0" * (4 << 20)) for i in range(5)])
    assert os.path.getsize(bomb) < 100_000
    _refused(bomb, str(tmp_path / "out"), "100 times.*max_ratio")


def test_total_bytes_and_member_count_are_capped(tmp_path):
    from jaxgenre.data.archive import Limits

    archive = _tar(tmp_path / "many.tar.gz", [(f"f{i}", "file", os.urandom(600)) for i in range(5)])
    _refused(archive, str(tmp_path / "out"), "more than 1000 bytes.*archive.max_bytes",
             limits=_caps(max_bytes=1000))
    _refused(archive, str(tmp_path / "out"), "more than 3 members.*archive.max_members",
             limits=_caps(max_members=3))
    z = tmp_path / "many.zip"
    with zipfile.ZipFile(z, "w") as f:
        for i in range(5):
            f.writestr(f"f{i}", os.urandom(600))
    _refused(str(z), str(tmp_path / "out"), "more than 1000 bytes", limits=_caps(max_bytes=1000))
    _refused(str(z), str(tmp_path / "out"), "5 members, more than 3", limits=_caps(max_members=3))
    download.extract(str(z), str(tmp_path / "out"), limits=_caps(max_bytes=3000, max_members=5))
    assert len(os.listdir(tmp_path / "out")) == 5


def test_the_type_comes_from_magic_bytes_not_is_zipfile(tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("from_the_zip.txt", b"zip")
    archive = _tar(tmp_path / "genres.tar", [("genres/a.au", "file", b"au"),
                                             ("inner.zip", "file", inner.getvalue())], mode="w")
    assert zipfile.is_zipfile(archive)  # the trap
    download.extract(archive, str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == ["genres", "inner.zip"]
    assert (tmp_path / "out" / "genres" / "a.au").read_bytes() == b"au"
    for name, head in [("x.bz2", b"BZh9"), ("x.xz", b"\xfd7zXZ\x00"), ("x.gz", b"\x1f\x8b\x08")]:
        (tmp_path / name).write_bytes(head + b"garbage" * 20)
        _refused(str(tmp_path / name), str(tmp_path / "out2"), "damaged|not a tar|no members")
    (tmp_path / "notes.txt").write_bytes(b"just text, no archive" * 30)
    _refused(str(tmp_path / "notes.txt"), str(tmp_path / "out2"), "neither a zip nor a tar")


def test_the_unpacked_folder_gets_the_umasks_mode(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [("genres/a.au", "file", b"au")])
    old = os.umask(0o022)
    try:
        download.extract(archive, str(tmp_path / "out"))
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "out").st_mode & 0o777) == oct(0o755)
    assert oct(os.stat(tmp_path / "out" / "genres" / "a.au").st_mode & 0o777) == oct(0o644)


def test_links_and_hardlinks_inside_are_kept(tmp_path):
    archive = _tar(tmp_path / "links.tar", [
        ("g/a.au", "file", b"A"), ("g/b.au", "hardlink", "g/a.au"),
        ("g/c.au", "symlink", "a.au"), ("g/sub", "dir", None)], mode="w")
    out = tmp_path / "out"
    download.extract(archive, str(out))
    assert (out / "g" / "b.au").read_bytes() == b"A" and os.readlink(out / "g" / "c.au") == "a.au"
    assert (out / "g" / "c.au").read_bytes() == b"A" and (out / "g" / "sub").is_dir()
    bad = _tar(tmp_path / "hl.tar", [("h", "hardlink", "g/none.au")], mode="w")
    _refused(bad, str(tmp_path / "out2"), "hard link 'h'.*'g/none.au'")


_RACER = r"""
import os, sys, time
from jaxgenre.data import download
real_replace, real_rename = os.replace, os.rename
def slow(real):
    def move(a, b, *args, **kw):  # hold the finished staging folder a while: both racers overlap
        time.sleep(0.6)
        return real(a, b, *args, **kw)
    return move
os.replace, os.rename = slow(real_replace), slow(real_rename)
ready = sys.argv[3]
open(ready + sys.argv[4], "w").close()
while not all(os.path.exists(ready + k) for k in "12"):
    time.sleep(0.01)
print(download.extract(sys.argv[1], sys.argv[2]))
"""


def test_two_processes_unpacking_one_archive(tmp_path):
    archive = _tar(tmp_path / "genres.tar.gz",
                   [(f"genres/f{i}.au", "file", os.urandom(1000)) for i in range(100)])
    target = str(tmp_path / "home" / "gtzan")
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, archive, target,
                                str(tmp_path / "ready"), k], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in "12"]
    results = [r.communicate(timeout=60) + (r.returncode,) for r in racers]
    for out, err, code in results:
        assert code == 0 and out.strip() == target, err[-2000:]
    assert sum("waiting for another process" in err for _, err, _ in results) == 1
    assert len(os.listdir(os.path.join(target, "genres"))) == 100
    assert os.listdir(tmp_path / "home") == ["gtzan"]  # no staging folder, no lock left


def test_the_configs_limits_reach_the_fma_source(tmp_path):
    """config.data.archive.* → sources.create_source → fma.fetch_fma → extract."""
    from jaxgenre.data import sources

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in ("fma_metadata.zip", "fma_small.zip"):
        with zipfile.ZipFile(mirror / name, "w") as z:
            for i in range(3):
                z.writestr(f"{name[:-4]}/f{i}.csv", b"x")
    config = base.get_config()
    config.data.update(source="fma", home=str(tmp_path / "home"))
    config.data.fma.mirrors = (str(mirror),)
    config.data.fma.sha1.update(metadata=None, small=None)
    config.data.archive.max_members = 2
    with pytest.raises(UserError, match="fma_metadata.zip' has 3 members, more than 2 "
                                        r"\(config.data.archive.max_members\)"):
        sources.create_source(config, progress=False)


def test_the_caps_come_from_the_config_or_configs_base():
    from jaxgenre.data.archive import Limits

    config = base.get_config()
    config.data.archive.max_members = 7
    assert Limits.from_config(config.data) == Limits(200 * 2**30, 7, 100.0)
    # Callers without a config: configs/base.py's caps, the one place they are written.
    assert Limits.from_config(None) == Limits(max_bytes=200 * 2**30, max_members=250_000,
                                              max_ratio=100.0)


@pytest.mark.parametrize("key,value", [("archive.max_ratio", 0.0), ("archive.max_members", 0),
                                       ("download.deadline_seconds", -1.0),
                                       ("download.max_bytes", 0)])
def test_a_limit_that_cannot_work_is_one_line(key, value):
    from jaxgenre.validation import check_config

    config = base.get_config()
    section, name = key.split(".")
    config.data[section][name] = value
    with pytest.raises(UserError, match=f"config.data.{key} must be a"):
        check_config(config)
