"""Genres for your own files, from a trained run:

    python -m jaxgenre.predict --workdir=runs/resnet_mel song.mp3 album/ [--top_k=3] [--json=out.json]

Any format `load_audio` reads, any length and sample rate. Each file's feature is
computed whole, cut into the model's segment (or clip) length like the training data,
and the segments' probabilities are averaged. A file that cannot be read is reported
on its own line; the others still get predictions. Exit status 0 when at least one
file was classified.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from ml_collections import config_dict

from jaxgenre import audio, features, models
from jaxgenre.data import pipeline
from jaxgenre.data.sources import AUDIO_EXTENSIONS
from jaxgenre.models import adapter


def _restore_best(workdir: str) -> Dict:
    """The best checkpoint's train state (as saved), or a clear error naming it."""
    best_dir = os.path.join(os.path.abspath(workdir), "checkpoints", "best")
    manager = None
    try:
        manager = ocp.CheckpointManager(best_dir)
        step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints/best")
        state = manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), record=ocp.args.JsonRestore()))["state"]
    except FileNotFoundError:
        raise
    except Exception as e:  # truncated or damaged files
        raise ValueError(f"the best checkpoint in {best_dir} cannot be read "
                         f"({type(e).__name__}: {e}); train again into a new "
                         f"--workdir") from None
    finally:
        if manager is not None:
            manager.close()
    return state


class Predictor:
    """A trained run's best checkpoint, ready to classify audio arrays."""

    def __init__(self, workdir: str):
        run_file = os.path.join(workdir, "run.json")
        if not os.path.isfile(run_file):
            raise FileNotFoundError(f"'{run_file}' not found: --workdir must be the folder of a "
                                    f"finished `python launch.py` training run")
        with open(run_file) as f:
            run = json.load(f)
        self.config = config_dict.ConfigDict(run["config"])
        self.class_names = run["class_names"]
        self.segment_steps = run["segment_steps"]
        self.feature_params = dict(self.config.features)
        self.kind = self.feature_params.pop("kind")
        state = _restore_best(workdir)
        self.variables = {"params": state["params"], "batch_stats": state["batch_stats"]}
        model_cfg = self.config.model
        self.model = models.create(model_cfg.name, len(self.class_names), dtype=model_cfg.dtype)
        adapt = adapter.for_model(model_cfg)
        self._apply = jax.jit(lambda v, x: jax.nn.softmax(
            self.model.apply(v, adapt(x), train=False), -1))

    def probabilities(self, y: np.ndarray) -> np.ndarray:
        """Mean class probabilities over the segments of one clip of any length."""
        kind = self.kind
        feat = np.asarray(features.compute(y, kind=kind, **self.feature_params))
        steps = self.segment_steps
        if feat.shape[-1] < steps:  # shorter than one segment: zero-pad (dB floor for dB kinds)
            fill = feat.min() if kind != "waveform" else 0.0
            pad = [(0, 0)] * (feat.ndim - 1) + [(0, steps - feat.shape[-1])]
            feat = np.pad(feat, pad, constant_values=fill)
        segs = pipeline.segments(np.zeros(1, np.int64), feat.shape[-1], segment_steps=steps)
        windows = np.stack([feat[..., s:s + segs.length] for s in segs.start])
        return np.asarray(self._apply(self.variables, jnp.asarray(windows))).mean(axis=0)


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxgenre.predict",
                                     description="Predict genres of audio files.")
    parser.add_argument("--workdir", required=True, help="folder of a trained run")
    parser.add_argument("--top_k", type=int, default=3)
    parser.add_argument("--json", help="also write the predictions here")
    parser.add_argument("paths", nargs="+", help="audio files or folders")
    args = parser.parse_args(argv)
    try:
        predictor = Predictor(args.workdir)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sr = predictor.config.features.sr
    results: List[Dict] = []
    for path in expand(args.paths):
        try:
            probs = predictor.probabilities(audio.load_audio(path, sr=sr))
        except (audio.AudioDecodeError, FileNotFoundError) as e:
            results.append({"file": path, "error": str(e)})
            print(f"{path}: ERROR {e}")
            continue
        order = np.argsort(-probs)[:args.top_k]
        top = [{"genre": predictor.class_names[i], "probability": float(probs[i])} for i in order]
        results.append({"file": path, "top": top})
        print(f"{path}: " + ", ".join(f"{t['genre']} {t['probability']:.2f}" for t in top))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if any("top" in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
