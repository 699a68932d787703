"""A tour of the study's four features on built-in test signals: checked against
librosa, timed, summarised and plotted (the study's figure-2 layout).

    python -m jaxgenre.feature_summary [--workdir=runs/features] [--seconds=30]

prints a table and writes `feature_summary.json` and `features.png` into the workdir.
"""

from __future__ import annotations

import os
import time
from typing import Dict

import jax
import numpy as np
from tqdm import tqdm

from jaxgenre import audio, features, strict_json
from jaxgenre.results import plots
from jaxgenre.testing import reference, signals

_LIBROSA_KINDS = ("spec", "mel", "mfcc")


def _timed(fn, *args, repeats: int = 3) -> float:
    """Best wall time of `fn(*args)` in seconds, after one warm-up call."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


DEFAULTS = {"sr": 22050, "n_fft": 2048, "hop_length": 512, "n_mels": 128, "n_mfcc": 20,
            "ref": 1.0, "top_db": 80.0}


def run(workdir: str, *, seconds: float = 30.0, seed: int = 0, plot: bool = True,
        **feature_params) -> Dict:
    """Computes, checks and plots every feature; returns the summary it writes.
    `feature_params` override librosa's defaults (sr, n_fft, hop_length, n_mels, ref, ...)."""
    os.makedirs(workdir, exist_ok=True)
    params = {**DEFAULTS, **feature_params}
    sr = params["sr"]
    named = signals.test_signals(sr=sr, seconds=seconds, n_fft=params["n_fft"], seed=seed)
    names = list(named)
    batch = np.stack([audio.fix_length(y, seconds, sr) for y in named.values()])
    print(f"jaxgenre features on {len(names)} built-in signals of {seconds:g} s "
          f"at {sr} Hz ({jax.device_count()} {jax.default_backend()} device(s))")

    summary = {"signals": names, "sr": sr, "clip_seconds": seconds,
               "features": {}}
    outputs = []
    for spec in tqdm(features.every_kind(params), desc="features", unit="kind"):
        kind = spec.kind
        out = np.asarray(spec.compute(batch))
        outputs.append((spec, out))
        entry = {"shape": list(out.shape[1:]), "min": float(out.min()), "max": float(out.max()),
                 "jaxgenre_ms_per_clip": 1e3 * _timed(spec.compute, batch) / len(names)}
        if kind in _LIBROSA_KINDS:
            ref = [reference.librosa_feature(y, kind=kind, **params) for y in batch]
            entry["max_abs_diff_vs_librosa"] = float(np.max(np.abs(out - np.stack(ref))))
            entry["librosa_ms_per_clip"] = 1e3 * _timed(
                lambda: [reference.librosa_feature(y, kind=kind, **params) for y in batch]
            ) / len(names)
        summary["features"][kind] = entry

    _print_table(summary)
    with open(os.path.join(workdir, "feature_summary.json"), "w") as f:
        strict_json.dump(summary, f, indent=2)
    if plot:
        path = os.path.join(workdir, "features.png")
        plots.feature_panel(outputs, names, path)
        print(f"wrote {path}")
    print(f"wrote {os.path.join(workdir, 'feature_summary.json')}")
    return summary


def _print_table(summary: Dict) -> None:
    header = f"{'feature':<9} {'shape':>12} {'range':>19} {'max|Δ| librosa':>15} " \
             f"{'jaxgenre ms/clip':>17} {'librosa ms/clip':>16}"
    print(header)
    print("-" * len(header))
    for kind, e in summary["features"].items():
        shape = "x".join(str(d) for d in e["shape"])
        diff = f"{e['max_abs_diff_vs_librosa']:.2e}" if "max_abs_diff_vs_librosa" in e else "-"
        lib = f"{e['librosa_ms_per_clip']:.1f}" if "librosa_ms_per_clip" in e else "-"
        print(f"{kind:<9} {shape:>12} {e['min']:>9.2f}..{e['max']:<8.2f} {diff:>15} "
              f"{e['jaxgenre_ms_per_clip']:>17.2f} {lib:>16}")


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m jaxgenre.feature_summary",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="runs/features")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--ref", default="1.0", help="a number, or 'max'")
    args = parser.parse_args(argv)
    run(args.workdir, seconds=args.seconds,
        ref=args.ref if args.ref == "max" else float(args.ref))
    return 0


if __name__ == "__main__":
    from jaxgenre import cli

    cli.run(main)
