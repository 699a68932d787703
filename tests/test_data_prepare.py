"""config.data → report, split, cache, segments: every source feeds the same batches."""

import json
import os

import numpy as np
import pytest

from configs import base
from conftest import write_gtzan_folder
from jaxgenre.data import pipeline, prepare, sources
from jaxgenre.writer import RunWriter


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
