"""The recipe's ablation on the hard synthetic set or on real music (a GTZAN-layout
folder, e.g. the development set `../shared/realmusic/make_devset.sh` renders), several
seeds, with intervals.

    python benchmarks/ablation.py --model=spectral_cnn [--rows=cumulative|single]
        [--root=DIR [--fractions=0.5,0.1,0.4]] [--seeds=0,1,2] [--epochs=15]
        [--clips_per_class=30] [--seconds=10] [--only=0,5] [--workdir=runs/ablation]
        [--table_only]

`--rows=cumulative` (the default): the study's recipe, then one piece added at a time
(each row keeps every earlier row's switches), the last row the seed ensemble of the
row before it. `--rows=single`: the study's recipe plus one switch per row, against the
study's recipe on the same seed, then the shipped recipe (`configs/base.recipe`, row 9)
and the recipe as it was before issue 22 (row 10); each row is tested under its own
selection rule and test windows, and the test windows and every rule of
`config.train.select` are also looked at after the fact on the same runs
(`benchmarks/ablation_eval.py`).

Every run is a normal run folder (`<workdir>/<model>/<row>_seed<k>/`), so an interrupted
ablation resumes; the tables are printed and written to `<workdir>/<model>/ablation.md`
(`ablation_single.md`). On the synthetic set the data seed is fixed (`data.seed=0`: the
seeds vary initialisation, batches and augmentation, so one row's runs can be
ensembled); on a folder each seed is also its own split (`data.seed=seed`), so the test
clips differ between seeds and a row is compared with the study's recipe seed by seed.
Intervals: the mean over seeds with its t interval; the difference from the study's
recipe seed by seed (same split) with its t interval over seeds, so that run-to-run
variation counts; and the clips only one of the two gets right over all seeds with the
exact McNemar test (conditional on these runs: `jaxgenre.results.stats`).
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

from benchmarks import ablation_eval  # noqa: E402
from configs import base  # noqa: E402
from jaxgenre import experiments  # noqa: E402
from jaxgenre.results import ensemble, stats, writer  # noqa: E402
from jaxgenre.data import prepare  # noqa: E402

# --rows=cumulative: each row adds its overrides to all the rows before it.
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
# --rows=single: the study's recipe plus one switch; RECIPE: configs/base.recipe itself.
RECIPE = "the recipe (configs/base.recipe)"
SINGLE_ROWS = (
    ("study recipe", {}),
    ("+ random crops", {"augment.random_crop": True}),
    ("+ SpecAugment (2 + 2 masks)", {"augment.spec_augment": True}),
    ("+ label smoothing 0.1", {"train.label_smoothing": 0.1}),
    ("+ AdamW, weight decay 0.05", {"optim.name": "adamw", "optim.weight_decay": 0.05}),
    ("+ warm-up and cosine decay", {"optim.schedule": "warmup_cosine"}),
    ("+ SpecAugment, time masks only", {"augment.spec_augment": True,
                                        "augment.freq_masks": 0}),
    ("+ SpecAugment, half widths", {"augment.spec_augment": True,
                                    "augment.freq_mask_fraction": 0.0625,
                                    "augment.time_mask_fraction": 0.03125}),
    ("+ weight average (optim.ema_decay 0.99)", {"optim.ema_decay": 0.99}),
    (RECIPE, {}),
    ("the recipe before issue 22", {"augment.random_crop": True, "augment.spec_augment": True,
                                    "optim.name": "adamw", "optim.weight_decay": 0.05,
                                    "optim.schedule": "warmup_cosine",
                                    "train.label_smoothing": 0.1, "eval.window_overlap": 0.5,
                                    "eval.clip_mean": "log_probability"}),
)


def row_config(model: str, overrides, seed: int, args, *, recipe: bool = False):
    config = (base.recipe if recipe else base.cell)(model=model, feature="mel")
    config.seed = seed
    if args.root:  # real music: each seed its own split
        config.data.update(source="folder", root=args.root, seed=seed,
                           fractions=tuple(float(f) for f in args.fractions.split(",")))
    else:
        config.data.seed = 0
        config.data.synthetic.update(variant="hard", clips_per_class=args.clips_per_class,
                                     seconds=args.seconds)
        config.data.clip_seconds = args.seconds
    config.data.cache_dir = os.path.join(args.workdir, "cache")
    config.train.epochs = args.epochs
    config.train.keep = args.epochs  # every epoch, for ablation_eval (which then drops them)
    config.eval.plots = False
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return config


def plan(args):
    """[(label, name, {seed: config})] in table order."""
    out, seeds = [], [int(s) for s in args.seeds.split(",")]
    rows = (range(len(ROWS if args.rows == "cumulative" else SINGLE_ROWS)) if args.only is None
            else [int(r) for r in args.only.split(",")])
    for row in rows:
        if args.rows == "cumulative":
            label = ROWS[row][0] if args.only is None or row == 0 else (
                f"rows 1-{row} together (up to '{ROWS[row][0]}')")
            overrides = {k: v for _, o in ROWS[:row + 1] for k, v in o.items()}
            configs = {s: row_config(args.model, overrides, s, args) for s in seeds}
            name = f"row{row}"
        else:
            label, overrides = SINGLE_ROWS[row]
            configs = {s: row_config(args.model, overrides, s, args, recipe=label == RECIPE)
                       for s in seeds}
            name = f"single{row}"
        out.append((label, name, configs))
    return out


def check_same_run(config, run_dir: str, label: str) -> None:
    """Exits naming the folder when `run_dir` holds a run of another config than the
    row's (rows are numbered: a row added in the middle renumbers the ones after it)."""
    run_file = os.path.join(run_dir, "run.json")
    if not os.path.isfile(run_file):
        return
    with open(run_file) as f:
        there = base.flat(json.loads(
            base.with_defaults(json.load(f).get("config", {})).to_json()))
    here = base.flat(json.loads(config.to_json()))
    changed = [k for k in sorted(set(there) & set(here)) if there[k] != here[k]]
    if changed:
        print(f"{run_dir} holds another run than row '{label}' ("
              + "; ".join(f"{k}: {there[k]!r} there, {here[k]!r} here" for k in changed[:3])
              + "): move it away or give another --workdir", file=sys.stderr)
        sys.exit(2)


def stat_line(label: str, per_seed: dict, reference: dict = None) -> str:
    """One table row: accuracy over seeds (mean ± std [t interval over seeds]) and,
    against `reference` (the same seeds' study recipe: the same splits), the paired
    difference seed by seed (mean [t interval over seeds]: run-to-run variation
    included), and the discordant clips over all seeds with their exact McNemar test
    (conditional on these runs: it ignores that another seed would train other models).
    n/a where one seed leaves nothing to spread, or where a run lacks the figure."""
    if any(c is None for c in per_seed.values()):
        return "| " + " | ".join([label, "n/a (the runs lack it)", "", ""]) + " |"
    acc = np.array([np.mean(list(c.values())) for c in per_seed.values()])
    spread = lambda x: ("± n/a [n/a]" if x.size < 2 else
                        "± {:.3f} [{:.3f}, {:.3f}]".format(x.std(ddof=1), *stats.t_interval(x)))
    cells = [label, f"{acc.mean():.3f} {spread(acc)}"]
    if reference is None:
        return "| " + " | ".join(cells + ["", ""]) + " |"
    if any(r is None for r in reference.values()):
        return "| " + " | ".join(cells + ["n/a", "n/a"]) + " |"
    a, b, deltas = [], [], []
    for seed, clips in per_seed.items():
        if set(clips) != set(reference[seed]):
            raise ValueError(f"{label}, seed {seed}: its test clips are not the study "
                             f"recipe's on that seed (another split?)")
        common = sorted(clips)
        a += [reference[seed][c] for c in common]
        b += [clips[c] for c in common]
        deltas.append(np.mean([clips[c] for c in common]) - np.mean(
            [reference[seed][c] for c in common]))
    deltas = np.array(deltas)
    test = stats.mcnemar(np.array(a, bool), np.array(b, bool))
    if deltas.size > 1:
        low, high = stats.t_interval(deltas)
        delta = f"{deltas.mean():+.3f} (sd {deltas.std(ddof=1):.3f}) [{low:+.3f}, {high:+.3f}]"
    else:
        delta = f"{deltas.mean():+.3f} (one seed)"
    cells += [delta, f"{test['b_only']} vs {test['a_only']}, p = {test['p_value']:.2f}"]
    return "| " + " | ".join(cells) + " |"


def _correct(evaluation, rule, eval_name):
    try:
        return ablation_eval.correct(evaluation, rule, eval_name)
    except KeyError:
        return None


def tables(args, planned, evaluations) -> str:
    n_seeds = len(args.seeds.split(","))
    head = [f"| {args.model}, mel, {n_seeds} seed(s) | test clip accuracy, mean ± sd "
            "[95% t interval over seeds] | Δ vs the study's recipe, seed by seed: mean (sd) "
            "[95% t interval] | clips only this / only the study's right (all seeds), "
            "exact McNemar |", "|---|---|---|---|"]
    reference = {s: ablation_eval.correct(evaluations[planned[0][1]][s], "accuracy",
                                          ablation_eval.EVALS[0][0]) for s in planned[0][2]}
    lines = list(head)
    for label, name, configs in planned:
        config = next(iter(configs.values()))
        own = ablation_eval.own_eval(config)  # each row under its own rule and windows
        per_seed = {s: _correct(evaluations[name][s], config.train.select, own)
                    for s in configs}
        lines.append(stat_line(label, per_seed, None if name == planned[0][1] else reference))
    # Test windows and their mean, after the fact, on the study recipe's runs.
    label0, name0, configs0 = planned[0]
    for eval_name, _, _ in ablation_eval.EVALS[1:]:
        per_seed = {s: _correct(evaluations[name0][s], "accuracy", eval_name)
                    for s in configs0}
        lines.append(stat_line(f"+ test windows: {eval_name} †", per_seed, reference))
    lines.append("")
    lines.append("† the study recipe's runs, each tested again on the epoch it kept (chosen on "
                 "validation tiles, not on these windows).")
    # Each selection rule on the first and the last row, against the study's rule.
    lines += ["", f"| selection rule ({args.model}) | test clip accuracy | Δ vs the study's "
                  "rule on the same runs, seed by seed | only this / only the study's rule "
                  "right |",
              "|---|---|---|---|"]
    recipe_rows = [p for p in planned[1:] if p[0] == RECIPE] or planned[-1:]
    for label, name, configs in (planned[0], *recipe_rows):
        own = ablation_eval.own_eval(next(iter(configs.values())))
        base_rule = {s: _correct(evaluations[name][s], "accuracy", own) for s in configs}
        for rule in ("accuracy", "accuracy_loss", "loss", "last"):
            per_seed = {s: _correct(evaluations[name][s], rule, own) for s in configs}
            epochs = [evaluations[name][s]["epochs"].get(rule) for s in configs]
            lines.append(stat_line(f"{label}: {rule} (epochs {epochs})", per_seed,
                                   None if rule == "accuracy" else base_rule))
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="spectral_cnn")
    parser.add_argument("--rows", choices=("cumulative", "single"), default="cumulative")
    parser.add_argument("--root", default=None, help="a GTZAN-layout folder of real music "
                        "(default: the built-in hard synthetic set)")
    parser.add_argument("--fractions", default="0.5,0.1,0.4")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--clips_per_class", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--only", default=None,
                        help="train these rows only, e.g. 0,5 (cumulative: each still has "
                             "every earlier row's switches)")
    parser.add_argument("--workdir", default="runs/ablation")
    parser.add_argument("--table_only", action="store_true",
                        help="print the tables of the runs already finished, train nothing")
    parser.add_argument("--prepare_only", action="store_true",
                        help="only build the feature cache every row shares, then stop "
                             "(so that rows can then train in parallel processes)")
    args = parser.parse_args(argv)
    if args.only is not None and 0 not in [int(r) for r in args.only.split(",")]:
        parser.error("--only must include row 0, the study's recipe every row is compared with")
    planned = plan(args)
    if args.prepare_only:
        config = next(iter(planned[0][2].values()))
        print(prepare.describe(prepare.prepare_data(config, os.path.join(args.workdir,
                                                                          "prepare"))))
        return
    out = os.path.join(args.workdir, args.model)
    evaluations = {}
    seeds = list(planned[0][2])
    for seed in seeds:  # seed by seed, so that a partial ablation already has whole seeds
        for label, name, configs in planned:
            run_dir = os.path.join(out, f"{name}_seed{seed}")
            done = os.path.isfile(os.path.join(run_dir, "results.json"))
            if not done and args.table_only:
                continue
            check_same_run(configs[seed], run_dir, label)
            if not done:
                writer.announce(f"{args.model}: {label}, seed {seed}")
                experiments.run_one(configs[seed], run_dir)
            evaluations.setdefault(name, {})[seed] = ablation_eval.load(
                configs[seed], run_dir, evaluate_missing=not args.table_only)
    checked = [ablation_eval.reproduces_results(configs[s], os.path.join(out, f"{n}_seed{s}"),
                                                evaluations[n][s])
               for _, n, configs in planned for s in evaluations.get(n, {})
               if not evaluations[n][s].get("partial")]
    print(f"re-evaluated from kept epochs: {sum(checked)} of {len(checked)} runs reproduce "
          f"their results.json test clip accuracy")
    complete = [p for p in planned if len(evaluations.get(p[1], {})) == len(seeds)]
    if not complete or complete[0] is not planned[0]:
        print("no complete row yet (the study's recipe on every seed)")
        return
    text = tables(args, complete, evaluations)
    if args.rows == "cumulative" and not args.root:
        last = complete[-1]
        ensembled = ensemble.run_ensemble(
            [os.path.join(out, f"{last[1]}_seed{s}") for s in seeds],
            os.path.join(out, "seed_ensemble"), plots_on=False)["test"]["clips"]
        text += (f"\n\nseed ensemble of '{last[0]}' ({len(seeds)} runs): clip accuracy "
                 f"{ensembled['accuracy']:.3f}, macro F1 {ensembled['macro_f1']:.3f}")
    name = "ablation.md" if args.rows == "cumulative" else "ablation_single.md"
    with open(os.path.join(out, name), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
