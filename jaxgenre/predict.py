"""Genres for your own files, from a trained run:

    python -m jaxgenre.predict --workdir=runs/resnet_mel song.mp3 album/ [--top_k=3] [--json=out.json]
        [--max_seconds=600]

Any format `load_audio` reads, any sample rate, and any length up to `--max_seconds`
(default 600 s): only that much of a file is decoded and scored, and a file that goes on
longer says so, on its line ("cut: scored the first 600 s of 25200 s") and in --json
(`cut`, `seconds_scored`, `file_seconds`). A 7-hour recording thus costs what 10 minutes
cost, not the gigabytes decoding all of it would. Built from the pieces
evaluation uses: the run's best checkpoint restored by `checkpoint.Checkpoints`, the
compiled `Steps.predict`, and the data pipeline's segments and batches
(`evaluate.segment_probabilities`), with clip voting from `metrics.vote` — so a file
is cut and scored exactly as a test clip is. A file that cannot be read is reported on
its own line; the others still get predictions. Exit status 0 when at least one file
was classified, 1 when none was, 2 on a usage error (one line, no traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Dict, List

import jax
import jax.numpy as jnp
import numpy as np

from configs import base
from jaxgenre import audio, checkpoint, errors, models, parallel, strict_json
from jaxgenre.training import evaluate
from jaxgenre.results import metrics
from jaxgenre.training import steps as steps_lib
from jaxgenre.data import pipeline
from jaxgenre.data.cache import FeatureStore
from jaxgenre.data.folder import AUDIO_EXTENSIONS
from jaxgenre.features import FeatureSpec
from jaxgenre.models import adapter

DEFAULT_MAX_SECONDS = 600.0


class Predictor:
    """A trained run's best checkpoint, ready to classify audio arrays."""

    def __init__(self, workdir: str):
        run_file = os.path.join(workdir, "run.json")
        if not os.path.isfile(run_file):
            raise errors.UserError(f"'{run_file}' not found: --workdir must be the folder of "
                                   f"a finished `python launch.py` training run")
        run = strict_json.load(run_file, what="the run's run.json")
        if not (isinstance(run.get("config"), dict) and isinstance(run.get("class_names"), list)):
            raise errors.UserError(f"'{run_file}' lacks 'config' or 'class_names': not the "
                                   f"run.json of a `python launch.py` training run")
        # A run.json written before a key existed ran with that key's default.
        self.config = base.with_defaults(run["config"])
        self.class_names = run["class_names"]
        self.segment_frames = run.get("segment_frames", run.get("segment_steps"))
        self.feature = FeatureSpec.from_config(self.config.features)
        self.mesh = parallel.data_mesh()
        model_cfg = self.config.model
        model = models.create(model_cfg.name, len(self.class_names),
                              **models.constructor_options(model_cfg))  # as training
        adapt = adapter.for_model(model_cfg, self.feature)
        tx = steps_lib.create_optimizer(  # the saved state's structure
            self.config.optim, 1, **models.optimizer_options(model_cfg))
        sample = jnp.zeros((1,) + self.feature.example_shape(self.segment_frames))
        template = steps_lib.create_train_state(jax.random.PRNGKey(0), model, tx, adapt(sample))
        template = jax.device_put(template, parallel.replicated(self.mesh))
        self.state = checkpoint.restore_best(  # a damaged best: skipped (nothing moved), the next used
            workdir, checkpoint.abstract(template),
            warn=lambda text: print(f"warning: {text}", file=sys.stderr, flush=True))
        self.model, self.adapt = model, adapt  # for jaxgenre.embed
        self.steps = steps_lib.compile_steps(model, None, adapt, self.mesh)
        self.batch_size = self.config.eval.batch_size

    def _feature(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(self.feature.compute(y))

    def probabilities(self, y: np.ndarray) -> np.ndarray:
        """Class probabilities of one clip of any length: its windows scored and
        combined as the run's test clips were (`eval.window_overlap`, `eval.clip_mean`)."""
        feat = self._feature(y)
        frames = self.segment_frames
        feat = self.feature.pad_to(feat, frames)  # shorter than one segment: padded
        store = FeatureStore(path="", features=feat[None], clip_ids=("clip",),
                             labels=np.zeros(1, np.int32), class_names=tuple(self.class_names),
                             hit=False)
        overlap = self.config.eval.window_overlap  # as the run's test
        segs = pipeline.segments(np.zeros(1, np.int64), feat.shape[-1], segment_frames=frames,
                                 hop_frames=pipeline.overlap_hop(frames, overlap))
        probs, labels, clips = evaluate.segment_probabilities(
            self.steps.predict, self.state, store, segs, batch_size=self.batch_size,
            mesh=self.mesh)
        return metrics.vote(probs, clips, labels,
                            mean=self.config.eval.clip_mean)[1][0]


def expand(paths: List[str]) -> List[str]:
    """Files as given; folders walked for audio files (sorted)."""
    out = []
    for path in paths:
        if os.path.isdir(path):
            for folder, _, names in sorted(os.walk(path)):
                out.extend(os.path.join(folder, n) for n in sorted(names)
                           if n.lower().endswith(AUDIO_EXTENSIONS))
        else:
            out.append(path)
    return out


def cut_note(row: Dict, max_seconds: float) -> str:
    """What a file's printed line adds when `--max_seconds` cut it ('' when it did not)."""
    if not row.get("cut"):
        return ""
    length = f" of {row['file_seconds']:g} s" if row.get("file_seconds") else ""
    return f"  [cut: scored the first {max_seconds:g} s{length} (--max_seconds={max_seconds:g})]"


def classify(predictor: Predictor, path: str, top_k: int, max_seconds: float) -> Dict:
    """One file's row of --json: its top-k genres, or why it has none."""
    sr = predictor.feature.sr
    try:
        decoded = audio.load_capped(path, sr=sr, max_seconds=max_seconds)
    except (audio.AudioDecodeError, FileNotFoundError) as e:
        return {"file": path, "error": str(e)}
    try:
        probs = np.asarray(predictor.probabilities(decoded.samples))
    except errors.UserError as e:  # e.g. too short for the feature's front end
        return {"file": path, "error": f"'{path}': {e}"}
    if not np.all(np.isfinite(probs)):
        return {"file": path, "error": f"the model gave non-finite probabilities for "
                                       f"'{path}': the run's checkpoint is damaged or diverged"}
    order = np.argsort(-probs)[:top_k]
    return {"file": path,
            "top": [{"genre": predictor.class_names[i], "probability": float(probs[i])}
                    for i in order],
            "seconds_scored": decoded.samples.size / sr, "cut": decoded.cut,
            "file_seconds": decoded.file_seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxgenre.predict",
                                     description="Predict genres of audio files.")
    parser.add_argument("--workdir", required=True, help="folder of a trained run")
    parser.add_argument("--top_k", type=int, default=3)
    parser.add_argument("--json", help="also write the predictions here")
    parser.add_argument("--max_seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help="score at most the first this many seconds of each file "
                             "(default %(default)g); a longer file is cut and says so")
    parser.add_argument("paths", nargs="+", help="audio files or folders")
    args = parser.parse_args(argv)
    if args.top_k < 1:
        return errors.report(errors.UserError(f"--top_k must be at least 1, got {args.top_k}"))
    if not (math.isfinite(args.max_seconds) and args.max_seconds > 0):
        return errors.report(errors.UserError(
            f"--max_seconds must be a positive number of seconds, got {args.max_seconds:g} "
            f"(default {DEFAULT_MAX_SECONDS:g})"))
    try:
        predictor = Predictor(args.workdir)
    except (errors.UserError, FileNotFoundError) as e:
        return errors.report(e)
    results: List[Dict] = []
    for path in expand(args.paths):
        row = classify(predictor, path, args.top_k, args.max_seconds)
        results.append(row)
        if "error" in row:
            print(f"{path}: ERROR {row['error']}")
            continue
        print(f"{path}: " + ", ".join(f"{t['genre']} {t['probability']:.2f}"
                                      for t in row["top"])
              + cut_note(row, args.max_seconds))
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2, allow_nan=False)
        except OSError as e:
            return errors.report(errors.UserError(f"cannot write --json={args.json}: {e}"))
    return 0 if any("top" in r for r in results) else 1


if __name__ == "__main__":
    from jaxgenre import cli

    cli.run(main)
