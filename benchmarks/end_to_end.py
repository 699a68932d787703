"""End to end (issue 25): what the input path costs a training epoch, and what features
resident on the devices, many steps per dispatch, evaluation on the devices, the
persistent compilation cache and seeds as one program gain, in one run.

    python benchmarks/end_to_end.py [--model=spectral_cnn] [--clips=40 | --gtzan] [--k=8]
        [--seeds=2] [--clip_seconds=30] [--segment_seconds=3] [--n_mels=32] [--batch=16]
        [--epochs=1] [--dtype=float32|bfloat16] [--cache_dtype=float32|float16] [--quick]
        [--grid [--grid_models=spectral_cnn,resnet18] [--grid_steps=4]]

Random mel features of 30 s clips in a memory-mapped .npy, as the feature cache holds them,
split 80/10/10 by clip; random weights, else `configs/base.py`'s defaults, trained through
`training/feeds.py` as `train.train` trains. Sized for a 2-core CPU by default (32 bands,
batch 16, SpectralCNN); --gtzan: GTZAN's size (1000 clips, 128 bands, batch 32). Rows, each
a fresh process (cold compiles, own peak): the defaults (resident "auto": streamed on CPU,
resident where an accelerator fits it; K = 1); streamed and resident at K = 1 and --k;
--seeds seeds as one program (`training.vectorized`, default settings; 0: no row). Columns:
  epoch s      an epoch's wall time, input included, the loss read every `train.log_every`
               steps as training does (mean of --epochs epochs after a warm-up epoch);
  step-only s  the same dispatches through the same compiled functions, on inputs kept
               on the devices from the warm-up epoch: no input path;
  ratio        epoch / step-only: the input overhead (1.00 = none);
  audio s/s    segments x segment seconds (window frames x hop / sr) per epoch second;
  compile s    compiling in the warm-up epoch and its validation (`compile_cache.CLOCK`);
               the default row with the persistent cache in a new folder (cold; then
               once more on it, warm), the others without;
  eval s       one validation pass (`feed.evaluate`; one per seed), warm;
  peak         the largest device's `peak_bytes_in_use`, else the process's max RSS.
--grid: the study grid at GTZAN size, estimated (`grid_estimate`). --quick: a tiny smoke
run, its rows in one process. Last line: `input overhead R (epoch X s / step-only Y s)`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()  # launch.py's CPU option, before JAX starts
CHILD_ENV = dict(os.environ)
if "--_child" not in sys.argv:  # the parent plans and prints on the CPU; the
    os.environ["JAX_PLATFORMS"] = "cpu"  # accelerator is the children's, one at a time

import end_to_end_rows  # noqa: E402  (imports JAX: after the platform is chosen)
from configs import base  # noqa: E402
from jaxgenre.data import cache  # noqa: E402

GTZAN_CLIPS, STUDY_EPOCHS = 1000, 50  # GTZAN: 1000 clips of 30 s; the study's epochs


def child(*specs: dict) -> list:
    """`end_to_end_rows.measure` of each spec, in one fresh process of this script:
    results or errors."""
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--_child", json.dumps(
        specs)], env=CHILD_ENV, cwd=ROOT, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()][-2:]
    return [{"error": f"exit {done.returncode}: " + " | ".join(tail)}] * len(specs)


def split_counts(clips: int) -> list:
    """(train, valid, test) clips of `clips` at the config's split fractions."""
    train, valid, _ = (round(clips * f) for f in base.get_config().data.fractions)
    return [train, valid, clips - train - valid]


def grid_estimate(args, common: dict, tmp: str) -> None:
    """The study grid (`experiments.grid_cells()`, or those of --grid_models) at GTZAN
    size, with the default settings. Measured per cell, in a fresh process on a few
    clips of the cell's shape: compile seconds, seconds per step of a timed epoch of
    --grid_steps steps (input included), seconds per validation batch. Extrapolated: 50
    epochs of 800 clips' steps and 100 clips' validation, then a test pass of 100 clips."""
    from jaxgenre import experiments

    wanted = args.grid_models.split(",") if args.grid_models else None
    cells = [c for c in experiments.grid_cells() if not wanted or c[0] in wanted]
    (train, valid, test), per_clip, total = split_counts(GTZAN_CLIPS), 10, 0.0  # 3 s of 30
    batch = base.get_config().train.batch_size  # the study's, whatever --batch says
    counts = [-(-args.grid_steps * batch // per_clip), -(-batch // per_clip), 1]
    steps, batches = train * per_clip // batch, -(-valid * per_clip // batch)
    print(f"\ngrid at GTZAN size, default settings: {train}/{valid}/{test} clips, {steps} steps "
          f"+ {batches} validation batches x {STUDY_EPOCHS} epochs\n{'cell':<28} {'input':>10} "
          f"{'s/step':>8} {'eval s/batch':>12} {'compile s':>9} {'est. min':>9}")
    for model, feature in cells:
        spec = {**common, "model": model, "feature": feature, "clip_seconds": 30.0, "epochs": 1,
                "segment_seconds": 3.0, "clips": counts, "timed": True, "batch": batch,
                "store": os.path.join(tmp, "cell.npy")}
        end_to_end_rows.write_features(spec)
        r = child(spec)[0]
        if "error" in r:
            print(f"{model + ' / ' + feature:<28} failed: {r['error'][:300]}", flush=True)
            continue
        step, per_batch = r["epoch_s"] / r["steps"], r["eval_s"] / r["valid_batches"]
        cell = r["compile_s"] + STUDY_EPOCHS * (steps * step + batches * per_batch) + (
            batches * per_batch * test / valid)
        total += cell
        print(f"{model + ' / ' + feature:<28} {r['input']:>10} {step:>8.3f} {per_batch:>12.3f} "
              f"{r['compile_s']:>9.1f} {cell / 60:>9.1f}", flush=True)
    print(f"estimated grid wall time: {total / 3600:.2f} h for {len(cells)} cells. Measured per "
          f"cell on {sum(counts)} clips: compile s, s/step (a timed epoch of {args.grid_steps} "
          f"steps after a warm-up epoch), eval s/batch ({counts[1]} clips); the rest is "
          f"extrapolated. Not counted: the feature cache, checkpoints, figures, process starts.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, default in (("model", "spectral_cnn"), ("clips", 40), ("k", 8), ("epochs", 1),
                          ("clip_seconds", 30.0), ("segment_seconds", 3.0), ("n_mels", 0),
                          ("batch", 0), ("grid_steps", 4), ("grid_models", ""), ("seeds", 2)):
        parser.add_argument(f"--{flag}", type=type(default), default=default)
    for flag in ("gtzan", "quick", "grid"):
        parser.add_argument(f"--{flag}", action="store_true")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--cache_dtype", default="float32", choices=cache.DTYPES)
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        print("RESULT " + json.dumps([end_to_end_rows.measure(spec)
                                      for spec in json.loads(args._child)]), flush=True)
        return
    study = base.get_config()
    min_seconds = 0.0 if args.quick else study.train.compilation_cache_min_seconds
    if args.quick:  # 4 steps of 16 one-second windows: one dispatch at K=4
        vars(args).update(clips=20, clip_seconds=4.0, segment_seconds=1.0, k=4)
    args.n_mels = args.n_mels or (study.features.n_mels if args.gtzan else 32)
    args.batch = args.batch or (study.train.batch_size if args.gtzan else 16)
    clips = GTZAN_CLIPS if args.gtzan else args.clips
    common = {"dtype": args.dtype, "cache_dtype": args.cache_dtype, "batch": args.batch}
    spec = {**common, "model": args.model, "feature": "mel", "clips": split_counts(clips),
            "clip_seconds": args.clip_seconds, "segment_seconds": args.segment_seconds,
            "features": {"n_mels": args.n_mels},
            "epochs": args.epochs, "timed": True}
    shape = end_to_end_rows.clip_shape(end_to_end_rows.cell_config(spec))
    rows = {"default": {}, **{f"{'resident' if on else 'streamed'} K={k}": {"train": {
        "resident": on, "steps_per_dispatch": k}} for on in (False, True) for k in (1, args.k)},
            **({f"{args.seeds} seeds as one": {"seeds": args.seeds}} if args.seeds else {})}
    print(f"{args.model}, {clips} clips of {args.clip_seconds:g} s (mel {shape} "
          f"{args.cache_dtype}, split {spec['clips']}), {args.segment_seconds:g} s segments, "
          f"batch {args.batch}, {args.dtype}, {os.cpu_count()} host cores; {args.epochs} timed "
          f"epoch(s) after a warm-up epoch" + ("; --quick: rows in one process sharing the "
          "compilation cache (compile s and peak not per row)" if args.quick else "") + "\n"
          f"{'setting':<16} {'epoch s':>8} {'step-only s':>11} {'ratio':>6} {'audio s/s':>9} "
          f"{'compile s':>9} {'eval s':>7} {'peak':>11} {'(of)':<6} feed", flush=True)
    with tempfile.TemporaryDirectory(prefix="end_to_end_") as tmp:
        spec["store"] = os.path.join(tmp, "features.npy")
        end_to_end_rows.write_features(spec)
        cached = {"cache_dir": os.path.join(tmp, "cc"), "cache_min_seconds": min_seconds}
        specs = [{**spec, **row, **(cached if i == 0 or args.quick else {})}
                 for i, row in enumerate(rows.values())]
        results = child(*specs) if args.quick else [None] * len(specs)
        for i, name in enumerate(rows):
            r = results[i] = results[i] or child(specs[i])[0]
            print(f"{name:<16} failed: {r['error'][:300]}" if "error" in r else
                  f"{name:<16} {r['epoch_s']:>8.2f} {r['step_s']:>11.2f} "
                  f"{r['epoch_s'] / r['step_s']:>6.2f} {r['audio_s'] / r['epoch_s']:>9.1f} "
                  f"{r['compile_s']:>9.2f} {r['eval_s']:>7.2f} {r['peak_bytes'] / 2**30:>7.2f}"
                  f" GiB {r['peak_kind']:<6} {r['description']}",
                  *(f"\n  {name}: {warning}" for warning in r.get("warnings", [])), flush=True)
        cold, warm = results[0], child({**spec, **cached, "timed": False})[0]
        if args.seeds and not any("error" in r for r in (results[-1], cold, warm)):
            # one program against the default row n times: the first seed compiles cold,
            # the others load its executables from the persistent cache (warm)
            r, n = results[-1], args.seeds
            apart = cold["compile_s"] + (n - 1) * warm["compile_s"]
            print(f"{n} seeds as one program (default settings): epoch {r['epoch_s']:.2f} s "
                  f"against {n} x {cold['epoch_s']:.2f} s apart "
                  f"({n * cold['epoch_s'] / r['epoch_s']:.2f}x); compiled {r['compile_s']:.2f}"
                  f" s against {apart:.2f} s apart (one cold, {n - 1} warm)")
        if "error" in warm or "error" in cold:
            print(f"compilation cache: failed: {warm.get('error') or cold.get('error')}")
        else:
            print(f"on {cold['device']}, {cold['steps']} steps of {args.batch} per epoch, input "
                  f"{cold['input']}\npersistent compilation cache, default row (kept: compiled in"
                  f" >= {min_seconds:g} s): warm-up epoch + validation compiled "
                  f"{cold['compile_s']:.2f} s of {cold['first_epoch_s']:.2f} s cold, "
                  f"{warm['compile_s']:.2f} s of {warm['first_epoch_s']:.2f} s warm "
                  f"({warm['cache_hits']} executables loaded)")
        if args.grid:
            grid_estimate(args, common, tmp)
    if "error" in cold:
        sys.exit("the default row failed: no input overhead to report")
    print(f"input overhead {cold['epoch_s'] / cold['step_s']:.2f} "
          f"(epoch {cold['epoch_s']:.2f} s / step-only {cold['step_s']:.2f} s)")


if __name__ == "__main__":
    main()
