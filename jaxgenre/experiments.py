"""What `launch.py` runs: one training run, k-fold cross-validation (one run per fold),
and the study's grid (one run per model x feature cell).

    python launch.py --config=configs/resnet_mel.py       # experiments.run
    python launch.py --config=configs/study_grid.py       # experiments.run_grid

A finished run — one whose folder has results.json — is not run again, so an
interrupted grid or k-fold resumes run by run (and a run itself resumes by epoch).
"""

from __future__ import annotations

import contextlib
import copy
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from configs import base
from jaxgenre import compile_cache, features, models
from jaxgenre.checkpoint import check as checkpoint_check
from jaxgenre.training import train, vectorized
from jaxgenre.results import clip_table, repeats, run_files, stats, study
from jaxgenre.results import tables as tables_lib
from jaxgenre.results import writer as writer_lib
from jaxgenre.data import download, prepare
from jaxgenre.errors import UserError


def run_one(config, workdir: str, figure_dir: Optional[str] = None) -> Dict:
    """Trains `config.model` on `config.data` / `config.features`, keeps the best
    validation checkpoint, tests it, and writes every output into `workdir` (see
    `writer.RunWriter`). Re-running with the same workdir resumes. In a multi-process
    run, call `parallel.initialize_distributed` first (launch.py does). `figure_dir`: where
    the per-class feature figure is kept for the other runs of a grid, seeds or folds."""
    config = base.with_defaults(config)  # every setting read as config.section.key
    checkpoint_check.check_resumable(config, workdir)
    compile_cache.enable(config.train.compilation_cache, download.data_home(config.data.home),
                         min_seconds=config.train.compilation_cache_min_seconds)
    with writer_lib.RunWriter(workdir, tensorboard=config.train.tensorboard) as out:
        data = prepare.prepare_data(config, workdir, on_report=out.data_report)
        out.prepared(prepare.describe(data), config, data.parts["train"].length,
                     data.class_names)
        model = models.create(config.model.name, len(data.class_names),
                              **models.constructor_options(config.model))
        trained = train.train(config, data, model, workdir=workdir, writer=out)
        return test_and_write(config, data, trained, out, figure_dir)


def run_together(configs: List, workdirs: List[str], figure_dir: Optional[str]) -> None:
    """`run_one` of every config (one cell, seeds apart) into its workdir, the seeds
    trained as one program (`training.vectorized`) on data prepared once (in the first
    workdir's cache); each workdir gets what `run_one` writes."""
    configs = [base.with_defaults(c) for c in configs]
    for config, workdir in zip(configs, workdirs):
        checkpoint_check.check_resumable(config, workdir)
    train_config = configs[0].train
    compile_cache.enable(train_config.compilation_cache,
                         download.data_home(configs[0].data.home),
                         min_seconds=train_config.compilation_cache_min_seconds)
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(writer_lib.RunWriter(
            w, tensorboard=train_config.tensorboard)) for w in workdirs]
        data = prepare.prepare_data(configs[0], workdirs[0], on_report=lambda report: [
            out.data_report(report, echo=i == 0) for i, out in enumerate(outs)])
        for i, (config, out) in enumerate(zip(configs, outs)):
            out.prepared(prepare.describe(data), config, data.parts["train"].length,
                         data.class_names, echo=i == 0)
        model = models.create(configs[0].model.name, len(data.class_names),
                              **models.constructor_options(configs[0].model))
        trained = vectorized.train_seeds(configs, data, model, workdirs=workdirs, writers=outs)
        for config, one, out in zip(configs, trained, outs):
            test_and_write(config, data, one, out, figure_dir)


def test_and_write(config, data, trained: train.Trained, out, figure_dir: Optional[str]
                   ) -> Dict:
    """After training: the best state tested, and results.json, test_predictions.csv and
    the figures written through `out`."""
    test = trained.feed.evaluate(trained.best_state, data.parts["test"],
                                 batch_size=config.eval.batch_size,
                                 clip_mean=config.eval.clip_mean)
    per_clip = test.pop("per_clip")
    out.clip_probabilities(clip_table.from_evaluation(per_clip, data.store.clip_ids,
                                                      data.class_names))
    # 95 % intervals of the clip-level figures (stats.metric_intervals), seeded by the run.
    test["clips"].update(stats.metric_intervals(
        per_clip["labels"], per_clip["probabilities"], seed=config.seed))
    name, feature = config.model.name, config.features.kind
    results = {"model": name, "feature": feature, "data": config.data.source,
               "clips": {part: len(np.unique(segs.clip)) for part, segs in data.parts.items()},
               "initialisation": trained.initialisation, "epochs": trained.epochs,
               "best_valid_accuracy": trained.best_valid_accuracy,
               "test": {level: {k: v for k, v in rep.items() if k != "roc_curves"}
                        for level, rep in test.items()}}
    out.results(results, test, model=name, feature=feature, data_source=config.data.source)
    if config.eval.plots:
        out.figures(test, title=f"{name} / {feature}", source=data.source,
                    feature_specs=features.every_kind(config.features), figure_dir=figure_dir)
    return {"results": results, "test": test, "state": trained.best_state,
            "history": trained.history}


def run(config, workdir: str, figure_dir: Optional[str] = None) -> None:
    """One run; with `config.seeds` one per seed; for `data.split='kfold'` with no
    `data.fold`, one per fold."""
    config = base.with_defaults(config)
    if config.seeds:
        run_seeds(config, workdir, figure_dir)
    elif config.data.split == "kfold" and config.data.fold is None:
        run_kfold(config, workdir, figure_dir)
    else:
        run_one(config, workdir, figure_dir)


def _results(run_dir: str, title: str, start) -> Dict:
    """`<run_dir>/results.json`, after calling `start()` to produce it unless it exists."""
    if not run_files.has_results(run_dir):
        writer_lib.announce(title)
        start()
    return run_files.read_results(run_dir)


def run_kfold(config, workdir: str, figure_dir: Optional[str] = None) -> Dict:
    """Trains fold 0 .. folds-1 in `<workdir>/fold_<k>/` (finished folds are kept) and
    writes `<workdir>/results.json` with every clip-level test metric's mean and std."""
    def fold_config(fold):
        cfg = copy.deepcopy(config)
        with cfg.unlocked():
            cfg.data.fold = fold
        return cfg

    per_fold = []
    for fold in range(config.data.folds):
        fold_dir = os.path.join(workdir, f"fold_{fold}")
        per_fold.append(_results(fold_dir, f"fold {fold + 1} of {config.data.folds}",
                                 lambda: run_one(fold_config(fold), fold_dir,
                                                 figure_dir or workdir)))
    # Every clip is tested in exactly one fold: the folds' predictions together are one
    # test_predictions.csv over the whole set, which comparisons of cells can pair.
    tables = [clip_table.read(os.path.join(workdir, f"fold_{k}", clip_table.FILE_NAME))
              for k in range(config.data.folds)]
    writer_lib.RunWriter(workdir).clip_probabilities(clip_table.ClipTable(
        sum((t.clip_ids for t in tables), ()), np.concatenate([t.labels for t in tables]),
        np.concatenate([t.probabilities for t in tables]), tables[0].class_names))
    results = {**{k: per_fold[0][k] for k in ("model", "feature", "data")},
               "folds": config.data.folds, "test": repeats.summary(per_fold, "per_fold"),
               "clips_per_fold": {part: [r.get("clips", {}).get(part) for r in per_fold]
                                  for part in ("train", "valid", "test")}}
    writer_lib.repeats_summary(results, workdir,
                               f"{config.data.folds}-fold cross-validation", "folds")
    return results


def run_seeds(config, workdir: str, figure_dir: Optional[str] = None) -> Dict:
    """`config.seeds` runs of one cell, seeds config.seed, config.seed + 1, ..., each in
    `<workdir>/seed_<k>/` (finished ones kept) on one split (`data.seed`, default the
    first seed), then `<workdir>/results.json` with each metric's mean and std over the
    seeds and every seed's figures, and the seed ensemble's test_predictions.csv (what
    comparisons of cells test; BUILD_NOTES says why) and figures under `seed_ensemble`."""
    from jaxgenre.results import ensemble
    from jaxgenre.data import sources

    seeds = [config.seed + i for i in range(config.seeds)]
    split_seed = sources.data_seed(config)

    def seed_config(seed):
        cfg = copy.deepcopy(config)
        with cfg.unlocked():
            cfg.seed, cfg.data.seed, cfg.seeds = seed, split_seed, None
            cfg.train.vectorize_seeds = False  # one seed's run.json: a separate run's
        return cfg

    dirs = [os.path.join(workdir, f"seed_{seed}") for seed in seeds]
    todo = [i for i, d in enumerate(dirs) if not run_files.has_results(d)]
    if config.train.vectorize_seeds and len(todo) > 1:
        writer_lib.announce(f"seeds {', '.join(str(seeds[i]) for i in todo)} trained together")
        run_together([seed_config(seeds[i]) for i in todo], [dirs[i] for i in todo],
                     figure_dir or workdir)
    per_seed = []
    for i, (seed, seed_dir) in enumerate(zip(seeds, dirs)):
        per_seed.append(_results(seed_dir, f"seed {seed} ({i + 1} of {len(seeds)})",
                                 lambda: run_one(seed_config(seed), seed_dir,
                                                 figure_dir or workdir)))
    combined = ensemble.run_ensemble(dirs, workdir, plots_on=bool(config.eval.plots),
                                     results_name="seed_ensemble.json")
    results = {**{k: per_seed[0][k] for k in ("model", "feature", "data")}, "seeds": seeds,
               "test": repeats.summary(per_seed, "per_seed")}
    results["test"]["seed_ensemble"] = combined["test"]["clips"]
    writer_lib.repeats_summary(results, workdir, f"{len(seeds)} seeds", "seeds")
    return results


def grid_cells(music: bool = False) -> List[Tuple[str, str]]:
    """The study's nine cells (feature by feature, as its tables), then one cell per
    registered model for each feature the study did not train (the waveform), then with
    `music` the music-pretrained cells ("musicnn", "probe" | "finetune")."""
    return ([(m, f) for f in study.FEATURES for m in study.MODELS]
            + [(name, f) for f in study.EXTRA_FEATURES
               for name, spec in models.REGISTRY.items() if f in spec.feature_kinds]
            + ([("musicnn", mode) for mode in study.MUSIC_MODES] if music else []))


def music_weights_missing() -> Optional[str]:
    """Why the grid cannot run its music-pretrained cells (musicnn's weights are not
    installed), or None when it can."""
    from jaxgenre.models import musicnn_port

    try:
        musicnn_port.checkpoint_prefix("MSD_musicnn")
    except UserError as e:
        return str(e)
    return None


def cell_config(config, model: str, feature: str):
    """A grid cell's config: `base.music_cell` for the music-pretrained cells, else
    `base.cell`."""
    if feature in study.MUSIC_MODES:
        return base.music_cell(probe=feature == "probe", config=config)
    return base.cell(model=model, feature=feature, config=config)


def run_grid(config, workdir: str, cells: List[Tuple[str, str]] = None) -> Dict:
    """Every study cell (or `cells`) in `<workdir>/<model>_<feature>/`, then results.md,
    results.csv and confusion_grid.png laid out like the study's tables 1-3; by default
    also a waveform row, one cell per registered model that takes waveforms."""
    missing = None
    if cells is None:
        missing = music_weights_missing()
        cells = grid_cells(music=missing is None)
    results = {}
    for model, feature in cells:
        cell_dir = os.path.join(workdir, f"{model}_{feature}")
        results[(model, feature)] = _results(
            cell_dir, f"grid cell {model} x {feature}",
            lambda: run(cell_config(config, model, feature), cell_dir, workdir))
    md, rows = tables_lib.grid_tables(results, config.data.source, music_missing=missing)
    md += _compare_grid(config, workdir, cells, results)
    shown = [(m, f) for m in study.MODELS for f in study.FEATURES]  # "not run" if absent
    shown += [cell for cell in cells if cell not in shown]
    confusion_cells = {
        (models.get_spec(m).display_name, f):
            results[(m, f)]["test"]["clips"] if (m, f) in results else None for m, f in shown}
    writer_lib.grid_tables(md, rows, confusion_cells, workdir)
    return results


def _compare_grid(config, workdir: str, cells, results) -> List[str]:
    """Every pair of cells compared on their test predictions (`comparisons`), written as
    comparisons.csv and figures; returns results.md's section on the study's claims."""
    from jaxgenre.results import comparisons

    tables = {}
    for model, feature in cells:
        path = os.path.join(workdir, f"{model}_{feature}", clip_table.FILE_NAME)
        if os.path.isfile(path):  # k-fold cells test other clips per fold: not compared
            tables[(model, feature)] = clip_table.read(path)
    if len(tables) < 2:
        return ["## The study's conclusions, tested", "",
                "Not tested: fewer than two cells have test_predictions.csv.", ""]
    result = comparisons.compare_cells(tables, seed=config.seed)
    imagenet = {c for c in tables if str(results[c].get("initialisation", "")).startswith(
        "ImageNet")}
    claim_list = comparisons.claims(result, imagenet_cells=imagenet)
    chart = [{"label": f"{models.get_spec(m).display_name} / {f}",
              "accuracy": results[(m, f)]["test"]["clips"]["accuracy"],
              "low": results[(m, f)]["test"]["clips"].get("accuracy_ci", [None] * 2)[0],
              "high": results[(m, f)]["test"]["clips"].get("accuracy_ci", [None] * 2)[1],
              "study": (study.STUDY.get((m, f)) or (None,))[0]} for m, f in tables]
    writer_lib.comparisons(result, claim_list, chart, workdir)
    return tables_lib.claims_section(result, claim_list)
