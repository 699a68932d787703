"""What test windows are worth on their own: each finished run's best checkpoint tested
four ways — windows without / with 50 % overlap, clip probability as the mean of the
windows' probabilities (the study's) / of their log-probabilities — on its own test
clips. The ablation's "+ test windows" row also changes which epoch validation picks;
this holds the trained model fixed, so the differences are the test windows' alone.

    python benchmarks/test_windows.py RUN_DIR [RUN_DIR ...]

Prints clip accuracy per run and setting, the mean over runs, and each setting's mean
paired difference from the study's way (no overlap, probability mean). The run folders
need their checkpoints and their feature cache (`data.cache_dir` in run.json).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()

import numpy as np  # noqa: E402

from jaxgenre import predict  # noqa: E402
from jaxgenre.training import evaluate  # noqa: E402
from jaxgenre.results import metrics  # noqa: E402
from jaxgenre.data import pipeline, prepare  # noqa: E402

SETTINGS = ((0.0, "probability"), (0.0, "log_probability"),
            (0.5, "probability"), (0.5, "log_probability"))


def accuracies(run_dir: str) -> list:
    """Clip accuracy of the run's best checkpoint under each of SETTINGS."""
    predictor = predict.Predictor(run_dir)
    data = prepare.prepare_data(predictor.config, os.path.join(run_dir, "prepare"),
                                progress=False)
    test_clips = np.unique(data.parts["test"].clip)
    n_frames = data.store.features.shape[-1]
    frames = predictor.segment_frames
    out = []
    for overlap, mean in SETTINGS:
        segs = pipeline.segments(test_clips, n_frames, segment_frames=frames,
                                 hop_frames=pipeline.overlap_hop(frames, overlap)
                                 if overlap else frames)
        probs, labels, clips = evaluate.segment_probabilities(
            predictor.steps.predict, predictor.state, data.store, segs,
            batch_size=predictor.batch_size, mesh=predictor.mesh)
        _, clip_probs, clip_labels = metrics.vote(probs, clips, labels, mean=mean)
        out.append(float(np.mean(clip_probs.argmax(1) == clip_labels)))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args(argv)
    names = [f"overlap {o:.0%}, {m} mean" for o, m in SETTINGS]
    table = np.array([accuracies(run) for run in args.runs])
    print("| run | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for run, row in zip(args.runs, table):
        print(f"| {run} | " + " | ".join(f"{a:.3f}" for a in row) + " |")
    print("| mean | " + " | ".join(f"{a:.3f}" for a in table.mean(0)) + " |")
    diff = table - table[:, :1]
    print("| mean Δ vs the study's way | " + " | ".join(f"{d:+.3f}" for d in diff.mean(0))
          + " |")
    print("| runs better / worse | " + " | ".join(
        f"{int((d > 0).sum())} / {int((d < 0).sum())}" for d in diff.T) + " |")


if __name__ == "__main__":
    main()
