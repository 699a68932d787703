"""config.data → report, split, cache, segments: every source feeds the same batches."""

import json
import os

import numpy as np
import pytest

from configs import base
from conftest import write_gtzan_folder
from jaxgenre.data import pipeline, prepare, sources
from jaxgenre.results.writer import RunWriter


def _config(**data):
    config = base.get_config()
    config.features.n_mels = 32
    config.data.clip_seconds = 10.0
    config.data.segment_seconds = 3.0
    config.data.synthetic.clips_per_class = 3
    config.data.synthetic.seconds = 10.0
    config.data.update(data)
    return config


@pytest.mark.parametrize("source", ["synthetic", "folder"])
def test_each_source_feeds_the_same_batch_iterator(tmp_path, source):
    config = _config(source=source)
    if source == "folder":
        config.data.root = write_gtzan_folder(tmp_path / "gtzan", "original")
    data = prepare.prepare_data(config, str(tmp_path / "run"), progress=False,
                                on_report=RunWriter(str(tmp_path / "run")).data_report)
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["usable_clips"] == len(data.store)
    if source == "folder":
        assert len(report["rejected"]) == 4  # empty, corrupt, 2 s, notes.txt
    train = data.parts["train"]
    assert train.length == 129  # 3 s of 512-sample hops at 22050 Hz
    clip_sets = {p: set(s.clip.tolist()) for p, s in data.parts.items()}
    assert not clip_sets["train"] & clip_sets["test"]  # a clip's segments stay together
    assert not clip_sets["train"] & clip_sets["valid"]
    batch = next(pipeline.iterate_batches(data.store, train, batch_size=4, seed=0, epoch=0,
                                          train=True))
    assert batch["inputs"].shape == (4, 32, 129) and batch["inputs"].dtype == np.float32
    assert set(batch["labels"].tolist()) <= set(range(len(data.class_names)))
    again = prepare.prepare_data(config, str(tmp_path / "run"), progress=False)
    assert again.store.hit and again.store.path == data.store.path


def test_a_class_without_usable_clips_stops_the_run_naming_it(tmp_path):
    root = write_gtzan_folder(tmp_path / "gtzan", "kaggle")
    jazz = os.path.join(root, "genres_original", "jazz")
    for name in os.listdir(jazz):
        if not name.startswith("jazz.00054"):
            os.remove(os.path.join(jazz, name))
    with pytest.raises(sources.DataSourceError, match="no usable clip for class.*jazz"):
        prepare.prepare_data(_config(source="folder", root=root), str(tmp_path / "run"),
                             progress=False,
                             on_report=RunWriter(str(tmp_path / "run")).data_report)
    assert (tmp_path / "run" / "data_report.json").exists()  # written before the failure


def test_a_duplicate_file_and_an_overwritten_one_through_the_whole_data_path(tmp_path):
    """config → prepare_data: jazz.00001 in two formats is one clip, in one part, and
    the duplicate is in data_report.json; a clip overwritten between two runs is
    computed again (its features are the new audio's), not served from the cache."""
    import soundfile as sf

    from jaxgenre import features

    root = write_gtzan_folder(tmp_path / "gtzan", "kaggle")
    jazz = os.path.join(root, "genres_original", "jazz")
    n = int(11.0 * 22050)
    tone = lambda f: (0.3 * np.sin(2 * np.pi * f * np.arange(n) / 22050)).astype(np.float32)
    sf.write(os.path.join(jazz, "jazz.00001.au"), tone(999.0), 22050, format="AU",
             subtype="PCM_16")
    config = _config(source="folder", root=root, split="random")
    run = tmp_path / "run"
    data = prepare.prepare_data(config, str(run), progress=False,
                                on_report=RunWriter(str(run)).data_report)
    report = json.loads((run / "data_report.json").read_text())
    assert {"file": os.path.join("jazz", "jazz.00001.au"),
            "reason": f"duplicate of {os.path.join('jazz', 'jazz.00001.wav')} (same clip id "
                      f"jazz/jazz.00001); not used"} in report["rejected"]
    ids = list(data.store.clip_ids)
    assert len(ids) == len(set(ids)) == report["usable_clips"] == 7
    owners = [p for p, s in data.parts.items() for c in set(s.clip.tolist())
              if ids[c] == "jazz/jazz.00001"]
    assert len(owners) == 1
    # Overwrite the kept file with other audio, same length, same format.
    kept = os.path.join(jazz, "jazz.00001.wav")
    sf.write(kept, tone(333.0), 22050, subtype="PCM_16")
    st = os.stat(kept)
    os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns + 10**6))
    again = prepare.prepare_data(config, str(run), progress=False)
    assert not again.store.hit and again.store.path == data.store.path
    row = ids.index("jazz/jazz.00001")
    y, sr = sf.read(kept, dtype="float32")
    expected = np.asarray(features.melspectrogram_db(y[None, :10 * sr], sr=sr, n_mels=32))[0]
    np.testing.assert_allclose(np.asarray(again.store.features[row]), expected, atol=1e-4)
