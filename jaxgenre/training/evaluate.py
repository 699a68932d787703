"""Running a train state over a part of the data: probabilities for every segment, and
the study's metrics at segment level and, by averaging a clip's segments, clip level.
Evaluation, validation and `predict` (a user's files) all go through
`segment_probabilities`."""

from __future__ import annotations

from typing import Callable, Dict, Tuple

import jax
import numpy as np

from jaxgenre import faults
from jaxgenre.results import metrics
from jaxgenre.data import pipeline
from jaxgenre.data.cache import FeatureStore


def segment_probabilities(predict_fn: Callable, state, store: FeatureStore,
                          segs: pipeline.Segments, *, batch_size: int, mesh
                          ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, labels, clip_index) for every segment of `segs`, padding removed;
    `predict_fn` is `Steps.predict`."""
    probs, labels, clips = [], [], []
    for batch in pipeline.iterate_batches(store, segs, batch_size=batch_size, seed=0, epoch=0,
                                          train=False):
        faults.point("evaluate_batch")
        out = predict_fn(state, pipeline.shard_batch(batch, mesh))
        if jax.process_count() > 1:  # each process loaded its own rows: gather them all
            from jax.experimental import multihost_utils

            out = multihost_utils.process_allgather(out, tiled=True)
            batch = {k: multihost_utils.process_allgather(v, tiled=True)
                     for k, v in batch.items()}
        out = np.asarray(out)
        keep = np.asarray(batch["mask"]) > 0
        probs.append(out[keep])
        labels.append(batch["labels"][keep])
        clips.append(batch["clip_index"][keep])
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(clips)


def evaluate_part(predict_fn: Callable, state, store: FeatureStore, segs: pipeline.Segments, *,
                  batch_size: int, mesh, clip_mean: str = "probability") -> Dict:
    """`report` of `segs`' windows, predicted by `predict_fn` from host batches."""
    probs, labels, clips = segment_probabilities(predict_fn, state, store, segs,
                                                 batch_size=batch_size, mesh=mesh)
    return report(probs, labels, clips, store.class_names, clip_mean=clip_mean)


def report(probs: np.ndarray, labels: np.ndarray, clips: np.ndarray, class_names, *,
           clip_mean: str = "probability") -> Dict:
    """Segment- and clip-level classification reports (identical without segmenting),
    and under 'per_clip' each clip's (store index, probabilities, label) arrays, which
    runs save for ensembles. `clip_mean` is how segments combine (`metrics.vote`)."""
    names = list(class_names)
    result = {"segments": metrics.classification_report(labels, probs, names)}
    clip_ids, clip_probs, clip_labels = metrics.vote(probs, clips, labels, mean=clip_mean)
    result["clips"] = metrics.classification_report(clip_labels, clip_probs, names)
    result["per_clip"] = {"clip_index": clip_ids, "probabilities": clip_probs,
                          "labels": clip_labels}
    return result
