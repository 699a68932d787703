"""The TFDS source on a tiny gtzan prepared here by TFDS's real `gtzan` builder (its
download step pointed at a local folder), read back through tfds.data_source and,
for a tfrecord copy, through tfds.load."""

import os

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, write_gtzan_folder
from jaxgenre.data import sources, tfds_gtzan


@pytest.fixture(scope="module")
def gtzan_wavs(tmp_path_factory):
    return write_gtzan_folder(tmp_path_factory.mktemp("gtzan"), "kaggle", seconds=11.0)


@pytest.mark.parametrize("file_format,reader", [("array_record", "tfds.data_source"),
                                                ("tfrecord", "tfds.load")])
def test_prepared_gtzan_reads_back_like_the_files(tmp_path, gtzan_wavs, file_format, reader):
    data_dir, prep_report = tfds_gtzan.prepare_from_folder(gtzan_wavs, str(tmp_path / "tfds"),
                                                           file_format=file_format)
    # The builder only ever saw decodable files; the others are listed, not crashed on.
    skipped = {r["file"] for r in prep_report.rejected}
    assert {"blues/blues.00099.wav", "jazz/jazz.00054.wav", "rock/notes.txt"} <= skipped

    source = sources.open_source("tfds", tfds_dir=data_dir, clip_seconds=10.0, progress=False)
    assert reader in source.report.notes[0]
    assert source.class_names[:3] == ("blues", "classical", "country")  # TFDS's 10 labels
    assert [r["file"] for r in source.report.rejected] == ["rock.00010.wav"]  # 2 s < 10 s
    assert sorted(c.clip_id for c in source.clips) == [
        "blues/blues.00000", "blues/blues.00001", "jazz/jazz.00000", "jazz/jazz.00001",
        "rock/rock.00000", "rock/rock.00001", "rock/rock.00011"]
    assert source.report.empty_classes() == ["classical", "country", "disco", "hiphop",
                                             "metal", "pop", "reggae"]
    for ref in source.clips:
        if ref.clip_id == "rock/rock.00011":
            continue  # written at 44.1 kHz stereo; TFDS stores it as is
        written, _ = sf.read(os.path.join(gtzan_wavs, "genres_original", ref.clip_id + ".wav"),
                             dtype="int16")
        y = source.load(ref)
        assert y.shape == (10 * SR,) and y.dtype == np.float32
        np.testing.assert_allclose(y, written[:10 * SR] / 32768.0, atol=1e-7)
        assert source.class_names[ref.label] == ref.clip_id.split("/")[0]


def test_missing_tfds_copy_says_how_to_prepare_one(tmp_path):
    with pytest.raises(sources.DataSourceError, match="python -m jaxgenre.data.tfds_gtzan"):
        sources.open_source("tfds", tfds_dir=str(tmp_path))


def test_tfds_from_an_archive_feeds_the_batch_iterator(tmp_path):
    import shutil

    from configs import base
    from jaxgenre.data import pipeline, prepare

    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
              "reggae", "rock"]
    folder = tmp_path / "Data" / "genres_original"
    for i, genre in enumerate(genres):
        os.makedirs(folder / genre)
        for k in range(3):
            y = 0.2 * np.sin(2 * np.pi * (100 + 40 * i + 7 * k) * np.arange(4 * SR) / SR)
            sf.write(str(folder / genre / f"{genre}.{k:05d}.wav"), y.astype(np.float32), SR,
                     subtype="PCM_16")
    archive = shutil.make_archive(str(tmp_path / "gtzan"), "zip", str(tmp_path), "Data")
    data_dir, _ = tfds_gtzan.prepare_from_folder(archive, str(tmp_path / "tfds"))

    config = base.get_config()
    config.data.update(source="tfds", tfds_dir=data_dir, clip_seconds=4.0, min_seconds=1.0,
                       segment_seconds=None)  # whole clips
    data = prepare.prepare_data(config, str(tmp_path / "run"), progress=False)
    assert data.class_names == tuple(genres) and len(data.store) == 30
    assert {p: len(s) for p, s in data.parts.items()} == {"train": 10, "valid": 10, "test": 10}
    batch = next(pipeline.iterate_batches(data.store, data.parts["test"], batch_size=4, seed=0,
                                          epoch=0, train=False))
    assert batch["inputs"].shape == (4, 128, 173)
    ids = [data.store.clip_ids[i] for i in batch["clip_index"]]
    assert len(set(ids)) == 4  # evaluation order: sorted clip ids, one test clip per genre
    assert [i.split("/")[0] for i in ids] == genres[:4]
    assert [genres[label] for label in batch["labels"]] == genres[:4]


def test_from_an_archive_that_writes_outside_is_refused_before_tensorflow(tmp_path,
                                                                          monkeypatch, capsys):
    """`--from=ARCHIVE` goes through the one extractor: a '../' member and a file written
    through an absolute symlink both stay out, and the command ends in one line, exit 2."""
    import io
    import tarfile

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(temp))  # the unpacking folder goes in here
    outside = tmp_path / "outside"
    outside.mkdir()
    for name, members in [("dots.tar", [("../escaped.txt", b"x")]),
                          ("link.tar", [("lnk", str(outside)), ("lnk/pwned.txt", b"x")])]:
        with tarfile.open(tmp_path / name, "w") as tar:
            for member, data in members:
                info = tarfile.TarInfo(member)
                if isinstance(data, str):
                    info.type, info.linkname = tarfile.SYMTYPE, data
                    tar.addfile(info)
                else:
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        code = tfds_gtzan.main([f"--from={tmp_path / name}", f"--tfds_dir={tmp_path / 'tfds'}"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and name in err and "refused" in err
    assert not (temp / "escaped.txt").exists() and os.listdir(outside) == []
    assert os.listdir(temp) == [] and not (tmp_path / "tfds").exists()
