"""The recipe's ablation: the study's recipe, then one piece added at a time, each row
trained with several seeds on one split of the hard synthetic set, clip-level test
accuracy and macro F1 as mean ± std over the seeds; the last row is the seed ensemble
of the row before it (python -m jaxgenre.ensemble over its runs).

    python benchmarks/ablation.py --model=spectral_cnn [--seeds=0,1,2] [--epochs=15]
        [--clips_per_class=30] [--seconds=10] [--only=0,5] [--workdir=runs/ablation]

Every run is a normal run folder (`<workdir>/<model>/<row>_seed<k>/`), so an interrupted
ablation resumes; the table is printed and written to `<workdir>/<model>/ablation.md`.
The data seed is fixed (`data.seed=0`): the seeds vary initialisation, batches and
augmentation, not the split, so runs of one row can be ensembled.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()  # launch.py's CPU option, before JAX starts

import numpy as np  # noqa: E402

from configs import base  # noqa: E402
from jaxgenre import ensemble, experiments, writer  # noqa: E402
from jaxgenre.data import prepare  # noqa: E402

# Each row adds its overrides to all the rows before it.
ROWS = (
    ("study recipe", {}),
    ("+ random crops", {"augment.random_crop": True}),
    ("+ SpecAugment", {"augment.spec_augment": True}),
    ("+ mixup", {"augment.mixup_alpha": 1.0}),
    ("+ schedule, label smoothing", {"optim.name": "adamw", "optim.weight_decay": 0.05,
                                     "optim.schedule": "warmup_cosine",
                                     "train.label_smoothing": 0.1}),
    ("+ test windows", {"eval.window_overlap": 0.5, "eval.clip_mean": "log_probability"}),
    ("− mixup", {"augment.mixup_alpha": 0.0}),  # the shipped recipe (configs/base.recipe)
)


def row_config(model: str, upto: int, seed: int, args) -> "base.config_dict.ConfigDict":
    config = base.cell(model=model, feature="mel")
    config.seed, config.data.seed = seed, 0
    config.data.synthetic.update(variant="hard", clips_per_class=args.clips_per_class,
                                 seconds=args.seconds)
    config.data.update(clip_seconds=args.seconds,
                       cache_dir=os.path.join(args.workdir, "cache"))
    config.train.epochs = args.epochs
    config.eval.plots = False
    for _, overrides in ROWS[:upto + 1]:
        for key, value in overrides.items():
            section, name = key.split(".")
            config[section][name] = value
    return config


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="spectral_cnn")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--clips_per_class", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", default=None,
                        help="train these rows only, e.g. 0,5 (each still has every earlier "
                             "row's switches): the study recipe against the full recipe")
    parser.add_argument("--workdir", default="runs/ablation")
    parser.add_argument("--prepare_only", action="store_true",
                        help="only build the feature cache every row shares, then stop "
                             "(so that rows can then train in parallel processes)")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.prepare_only:
        data = prepare.prepare_data(row_config(args.model, 0, seeds[0], args),
                                    os.path.join(args.workdir, "prepare"))
        print(prepare.describe(data))
        return
    out = os.path.join(args.workdir, args.model)
    table = {}
    rows = range(len(ROWS)) if args.only is None else [int(r) for r in args.only.split(",")]
    for row in rows:
        label = ROWS[row][0] if args.only is None or row == 0 else (
            f"rows 1-{row} together (up to '{ROWS[row][0]}')")
        runs = []
        for seed in seeds:
            run_dir = os.path.join(out, f"row{row}_seed{seed}")
            if not os.path.isfile(os.path.join(run_dir, "results.json")):
                writer.announce(f"{args.model}: {label}, seed {seed}")
                experiments.run_one(row_config(args.model, row, seed, args), run_dir)
            runs.append(run_dir)
        table[label] = [json.load(open(os.path.join(r, "results.json")))["test"]["clips"]
                        for r in runs]
        last_runs = runs
    ensembled = ensemble.run_ensemble(last_runs, os.path.join(out, "seed_ensemble"),
                                      plots_on=False)["test"]["clips"]
    lines = [f"| {args.model}, mel | clip accuracy | clip macro F1 |", "|---|---|---|"]
    for label, clips in table.items():
        acc, f1 = (np.array([c[k] for c in clips]) for k in ("accuracy", "macro_f1"))
        lines.append(f"| {label} | {acc.mean():.3f} ± {acc.std():.3f} | "
                     f"{f1.mean():.3f} ± {f1.std():.3f} |")
    lines.append(f"| seed ensemble of the row above ({len(seeds)} runs) | "
                 f"{ensembled['accuracy']:.3f} | {ensembled['macro_f1']:.3f} |")
    text = "\n".join(lines)
    with open(os.path.join(out, "ablation.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
