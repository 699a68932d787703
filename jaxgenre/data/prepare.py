"""One call from a config to ready-to-batch data: source → report → split → cached
features → segments per part. Whatever the source, what comes out is the same."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Dict, Tuple

from jaxgenre.data import cache, pipeline, sources, splits
from jaxgenre.data.types import DataReport, DataSourceError
from jaxgenre.features import FeatureSpec


@dataclasses.dataclass(frozen=True)
class PreparedData:
    store: cache.FeatureStore
    parts: Dict[str, pipeline.Segments]  # 'train' / 'valid' / 'test'
    class_names: Tuple[str, ...]
    report: DataReport
    source: sources.Source
    feature: FeatureSpec  # what store.features hold


def prepare_data(config, workdir: str, *, progress: bool = True,
                 on_report: Callable[[DataReport], None] = lambda report: None) -> PreparedData:
    """Opens `config.data`'s source, splits it, caches `config.features` for every
    usable clip, and cuts segments. `on_report` gets the data report once the split is
    made, before anything can fail on it (the run writer prints and saves it); fails
    (naming the classes) if a class has no clip."""
    source = sources.create_source(config, progress=progress)
    report = source.report
    ids = [c.clip_id for c in source.clips]
    split = splits.make_split(config.data, ids, sources.labels_of(source.clips),
                              sources.data_seed(config),
                              report, kind=config.data.split or source.default_split,
                              official=source.official_split)
    on_report(report)
    if not report.ok():
        raise DataSourceError(
            f"no usable clip for class(es) {', '.join(report.empty_classes())}; see "
            f"{os.path.join(workdir, 'data_report.json')}")
    cache_dir = config.data.cache_dir or os.path.join(workdir, "cache")
    feature = FeatureSpec.from_config(config.features)
    store = cache.build_features(source, feature, cache_dir, progress=progress,
                                 dtype=config.data.cache_dtype)
    n_frames = store.features.shape[-1]
    segment = feature.frames(config.data.segment_seconds)
    overlap = config.eval.window_overlap
    train_hop = feature.frames(config.data.segment_hop_seconds)
    # Validation and test windows overlap by eval.window_overlap (0: as training's).
    eval_hop = pipeline.overlap_hop(segment, overlap) if overlap and segment else train_hop
    parts = {name: pipeline.segments(idx, n_frames, segment_frames=segment,
                                     hop_frames=train_hop if name == "train" else eval_hop)
             for name, idx in split.items()}
    return PreparedData(store=store, parts=parts, class_names=store.class_names, report=report,
                        source=source, feature=feature)


def describe(data: PreparedData) -> str:
    """A few lines on what training would get: parts, segments, cache, input shape."""
    parts = ", ".join(f"{name} {len(set(s.clip.tolist()))} clips / {len(s)} segments"
                      for name, s in data.parts.items())
    state = "reused" if data.store.hit else "computed"
    shape = data.feature.example_shape(data.parts["train"].length)
    return (f"split: {parts}\nfeature cache ({state}): {data.store.path}\n"
            f"model input per segment: {shape}")
