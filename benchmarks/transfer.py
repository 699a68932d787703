"""Transfer from music against the recipe trained from scratch, on the same splits, seeds
and epochs: the recipe on SpectralCNN (and ResNet-18 with --resnet), the musicnn probe
and the musicnn fine-tune (configs/musicnn_*.py), PANNs' CNN14 probe and fine-tune
(configs/panns_*.py; arms panns_probe, panns_finetune), each a normal run folder.

    python benchmarks/transfer.py --root=DIR [--seeds=3,4,5] [--epochs=15]
        [--fractions=0.5,0.1,0.4] [--arms=recipe,probe,finetune] [--resnet]
        [--workdir=runs/transfer]
    python benchmarks/transfer.py --root=synthetic:hard ...   # the built-in hard set

On a folder each seed is its own split (`data.seed=seed`), shared by every arm of that
seed. `--root=synthetic:hard` is the ablation's hard synthetic set (30 clips per class
of 10 s, data seed 0: one set and split, the seeds vary the training). Prints and writes `<workdir>/transfer.md`: test clip accuracy per arm (mean ± sd
[t interval over seeds]) and against the first arm seed by seed (Δ with its t interval;
the clips only one of the two gets right over all seeds, exact McNemar). An interrupted
benchmark resumes run by run. Needs musicnn's weights
(`pip install --no-deps -r requirements-musicnn.txt`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()

import numpy as np  # noqa: E402

from benchmarks.ablation import check_same_run, stat_line  # noqa: E402
from configs import base  # noqa: E402
from jaxgenre import experiments, strict_json  # noqa: E402
from jaxgenre.results import clip_table  # noqa: E402

ARMS = {
    "recipe": ("the recipe, SpectralCNN", lambda: base.recipe(model="spectral_cnn")),
    "resnet": ("the recipe, ResNet-18 (ImageNet)", lambda: base.recipe(model="resnet18")),
    "probe": ("musicnn MSD, probe", lambda: base.musicnn_transfer(probe=True)),
    "finetune": ("musicnn MSD, fine-tune", lambda: base.musicnn_transfer(probe=False)),
    "panns_probe": ("PANNs CNN14, probe", lambda: base.panns_transfer(probe=True)),
    "panns_finetune": ("PANNs CNN14, fine-tune", lambda: base.panns_transfer(probe=False)),
}
SYNTHETIC = "synthetic:"


def _data(config, seed: int, args) -> None:
    """A folder split by `seed`, or the hard synthetic set as the ablation builds it."""
    if args.root.startswith(SYNTHETIC):
        config.data.update(source="synthetic", seed=0, clip_seconds=10.0)
        config.data.synthetic.update(variant=args.root[len(SYNTHETIC):], clips_per_class=30,
                                     seconds=10.0)
    else:
        config.data.update(source="folder", root=args.root, seed=seed,
                           fractions=tuple(float(f) for f in args.fractions.split(",")))


def arm_config(arm: str, seed: int, args):
    config = ARMS[arm][1]()
    config.seed = seed
    _data(config, seed, args)
    config.train.epochs = args.epochs
    config.eval.plots = False
    return config


def correct_by_clip(run_dir: str) -> dict:
    table = clip_table.read(os.path.join(run_dir, clip_table.FILE_NAME))
    right = np.argmax(table.probabilities, axis=1) == table.labels
    return dict(zip(table.clip_ids, right.tolist()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--seeds", default="3,4,5")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--fractions", default="0.5,0.1,0.4")
    parser.add_argument("--arms", default="recipe,probe,finetune")
    parser.add_argument("--resnet", action="store_true", help="also the recipe on ResNet-18")
    parser.add_argument("--workdir", default="runs/transfer")
    args = parser.parse_args(argv)
    arms = args.arms.split(",") + (["resnet"] if args.resnet else [])
    seeds = [int(s) for s in args.seeds.split(",")]
    per_arm, seconds = {}, {}
    for arm in arms:
        per_arm[arm], seconds[arm] = {}, []
        for seed in seeds:
            run_dir = os.path.join(args.workdir, arm, f"seed{seed}")
            config = arm_config(arm, seed, args)
            check_same_run(config, run_dir, arm)
            start = time.perf_counter()
            if not os.path.isfile(os.path.join(run_dir, clip_table.FILE_NAME)):
                experiments.run_one(config, run_dir)
                seconds[arm].append(time.perf_counter() - start)
            per_arm[arm][seed] = correct_by_clip(run_dir)
    first = arms[0]
    lines = [f"| {args.root}, {len(seeds)} seed(s), {args.epochs} epochs | test clip accuracy, "
             "mean ± sd [95% t interval over seeds] | Δ vs "
             f"{ARMS[first][0]}, seed by seed: mean (sd) [95% t interval] | clips only this / "
             "only the first arm right (all seeds), exact McNemar |", "|---|---|---|---|"]
    for arm in arms:
        lines.append(stat_line(ARMS[arm][0], per_arm[arm],
                               None if arm == first else per_arm[first]))
    lines.append("")
    lines.append("training wall time per run (this run's new runs): " + "; ".join(
        f"{arm} {np.mean(s) / 60:.1f} min" for arm, s in seconds.items() if s))
    text = "\n".join(lines)
    print(text)
    strict_json.write_text(os.path.join(args.workdir, "transfer.md"), text + "\n")


if __name__ == "__main__":
    main()
