"""Every output of a run, in one place: console lines, progress bars, `data_report.json`,
`run.json`, `metrics.jsonl`, `results.json`, figures, and the grid's and k-fold's
summaries. The training loop, the experiments and the CLIs hand their results here;
nothing below them prints.

Console lines are printed by every process (each reports what it loaded); files are
written by process 0 only, so a multi-host run writes each file once.

Every JSON file goes through `strict_json`: a NaN or infinity (an undefined AUC, a
diverged loss) is written as null, so each file is JSON to any parser.

With `tensorboard=True` (`config.train.tensorboard`) the same scalars and figures also go
to TensorBoard event files (`results.tensorboard`): the training loss every
`train.log_every` steps, each epoch's line, the test figures as scalars and images.
`metrics.jsonl` holds the epoch scalars, one JSON line per epoch.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from typing import Dict, Iterable, List, Optional, Sequence

import jax
from tqdm import tqdm

from jaxgenre import strict_json
from jaxgenre.results import clip_table, plots, registry, run_files
from jaxgenre.results import tables as tables_lib
from jaxgenre.results import tensorboard as tensorboard_lib


def _epoch_of(line: str) -> Optional[int]:
    """The epoch of one metrics.jsonl line; None for a line that is not one (a write cut
    off by a kill)."""
    try:
        epoch = json.loads(line).get("epoch")
    except (ValueError, AttributeError):
        return None
    return epoch if isinstance(epoch, int) else None


class RunWriter:
    """The outputs of one training run in `workdir`."""

    def __init__(self, workdir: str, *, files: Optional[bool] = None,
                 tensorboard: bool = False):
        self.workdir = workdir
        self.files = jax.process_index() == 0 if files is None else files
        os.makedirs(workdir, exist_ok=True)
        self.events = tensorboard_lib.RunEvents(workdir, enabled=tensorboard and self.files,
                                                warn=self.warn)

    def close(self) -> None:
        """Closes the TensorBoard file (nothing else stays open)."""
        self.events.close()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    def say(self, text: str) -> None:
        print(text, flush=True)

    def warn(self, text: str) -> None:
        print(f"WARNING: {text}", file=sys.stderr, flush=True)

    def data_report(self, report, *, echo: bool = True) -> None:
        """The data report, printed (unless not `echo`: seeds trained together print it
        once) and (process 0) written as data_report.json."""
        if self.files:
            report.write_json(self._path("data_report.json"))
        if echo:
            self.say(report.format())

    def prepared(self, description: str, config, segment_frames: int, class_names, *,
                 echo: bool = True) -> None:
        """What training gets (`prepare.describe`; printed when `echo`), and run.json:
        what `predict` needs to rebuild the model (config, segment length, class names)."""
        if echo:
            self.say(description)
        if echo and jax.process_count() > 1:
            local = config.train.batch_size // jax.process_count()
            index = jax.process_index()
            self.say(f"process {index} of {jax.process_count()}: loads rows {index * local}.."
                     f"{(index + 1) * local - 1} of every global batch of "
                     f"{config.train.batch_size}; {jax.local_device_count()} of "
                     f"{jax.device_count()} devices are local")
        if self.files:
            with open(self._path("run.json"), "w") as f:
                strict_json.dump({"config": json.loads(config.to_json()),
                                  "segment_frames": segment_frames,
                                  "class_names": list(class_names)}, f, indent=2)

    def progress(self, iterable: Iterable, *, total: int, unit: str, desc: str):
        """A progress bar (process 0 only) that the loop may give a postfix."""
        return tqdm(iterable, total=total, unit=unit, leave=False, desc=desc,
                    disable=jax.process_index() != 0)

    def starts_at(self, epoch: int, step: int) -> None:
        """Training starts after `epoch` (0: from scratch; else the checkpoint it resumes
        from, at `step`), said when it resumes. What an earlier attempt logged after
        that point, which this run trains again, is dropped: metrics.jsonl's lines of
        later epochs (an attempt killed before an epoch's checkpoint, or between
        `checkpoint_every` saves, wrote them), so that it holds each epoch once, and
        on resuming TensorBoard's events after `step`."""
        path = self._path("metrics.jsonl")
        if self.files and os.path.exists(path):
            with open(path) as f:
                lines = f.read().splitlines()
            kept = [line for line in lines if _epoch_of(line) is not None
                    and _epoch_of(line) <= epoch]
            if len(kept) < len(lines):
                strict_json.write_text(path, "".join(line + "\n" for line in kept))
        if epoch:
            self.events.resumed(step)
            self.say(f"resuming from {self.workdir}/checkpoints at epoch {epoch}")

    def step(self, step: int, values: Dict) -> None:
        """Training scalars of one step (loss, speed), for TensorBoard only: the console
        has them on the progress bar."""
        self.events.scalars(step, values, prefix="train")

    def epoch(self, line: Dict) -> None:
        """One epoch's scalars: printed, and appended to metrics.jsonl (a NaN loss as
        null)."""
        text = strict_json.dumps(line)
        self.say(text)
        if self.files:
            with open(self._path("metrics.jsonl"), "a") as f:
                f.write(text + "\n")
        self.events.step = int(line.get("step", self.events.step))
        self.events.scalars(self.events.step, line, prefix="epoch")

    def results(self, results: Dict, test: Dict, *, model: str, feature: str,
                data_source: str) -> None:
        """results.json (the ROC curves left out) and the test table beside the study's."""
        if self.files:
            run_files.write_results(self.workdir, results)
        self.say(tables_lib.test_table(test, model, feature, data_source))
        for level, report in test.items():
            self.events.scalars(self.events.step, {k: report.get(k) for k in registry.KEYS},
                                prefix=f"test/{level}")

    def clip_probabilities(self, table) -> None:
        """test_predictions.csv: each test clip's probabilities (`clip_table`), what
        ensembles of finished runs average."""
        if self.files:
            clip_table.write(self._path(clip_table.FILE_NAME), table)

    def figures(self, test: Dict, *, title: str, source, feature_specs: Sequence,
                figure_dir: Optional[str] = None) -> None:
        """Confusion matrices, ROC curves, training curves and one feature image per
        class (process 0; that one kept in `figure_dir` and drawn once per data set)."""
        if not self.files:
            return
        panel = self._path("features_per_class.png")
        plots.class_panel(source, feature_specs, panel, figure_dir=figure_dir)
        for path in plots.run_figures(test, self.workdir, title) + [panel]:
            self.say(f"wrote {path}")
            self.events.figure(os.path.splitext(os.path.basename(path))[0], path)


    def ensemble(self, ensemble, *, results_name: str, plots_on: bool) -> None:
        """An ensemble's (`ensemble.Ensemble`) `results_name`, test_predictions.csv,
        results.md and figures (process 0), and its table printed."""
        figures = [self._path(f"{name}.png") for name in ("confusion_clips", "roc_clips")]
        if self.files:
            strict_json.write(self._path(results_name), ensemble.results, indent=2)
            clip_table.write(self._path(clip_table.FILE_NAME), ensemble.table)
            strict_json.write_text(self._path("results.md"), "\n".join(ensemble.lines) + "\n")
        self.say("\n".join(ensemble.lines))
        if plots_on and self.files:
            report = ensemble.report
            plots.confusion_matrix(report["confusion"], report["class_names"], figures[0],
                                   f"{ensemble.title} — test clips")
            plots.roc_curves(report, figures[1], f"{ensemble.title} — test clips,")
            for path in figures:
                self.say(f"wrote {path}")


def announce(title: str) -> None:
    """A heading before one of several runs (a grid cell, a fold)."""
    print(f"=== {title} ===", flush=True)


def repeats_summary(results: Dict, workdir: str, title: str, unit: str) -> None:
    """`<workdir>/results.json` of a k-fold or several-seed run and its mean ± std lines."""
    if jax.process_index() == 0:
        run_files.write_results(workdir, results)
    print("\n".join(tables_lib.repeats_lines(results, title, unit)), flush=True)


def grid_tables(md: List[str], rows: List[Dict], confusion_cells: Dict, workdir: str) -> None:
    """The grid's results.md, results.csv and confusion_grid.png, and the tables printed."""
    if jax.process_index() == 0:
        strict_json.write_text(os.path.join(workdir, "results.md"), "\n".join(md))
        with open(os.path.join(workdir, "results.csv"), "w", newline="") as f:
            table = csv.DictWriter(f, fieldnames=list(rows[0]))
            table.writeheader()
            table.writerows(rows)
        plots.confusion_grid(confusion_cells, os.path.join(workdir, "confusion_grid.png"))
    print("\n".join(md))


def comparisons(result: Dict, claims: List[Dict], chart: List[Dict], workdir: str) -> None:
    """The grid's comparisons.csv (one row per pair of cells), comparisons.json (the
    same, Cochran's Q and the claims), comparisons_pvalues.png and accuracy_intervals.png."""
    if jax.process_index() != 0:
        return
    columns = ["a", "b", "a_only", "b_only", "p_value", "p_holm", "delta_accuracy",
               "delta_low", "delta_high", "delta_macro_f1", "delta_f1_low", "delta_f1_high",
               "mdd"]
    with open(os.path.join(workdir, "comparisons.csv"), "w", newline="") as f:
        table = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        table.writeheader()
        table.writerows(result["pairs"])
    with open(os.path.join(workdir, "comparisons.json"), "w") as f:
        strict_json.dump({**{k: v for k, v in result.items() if k != "accuracy"},
                          "accuracy": {f"{m}/{feat}": a
                                       for (m, feat), a in result["accuracy"].items()},
                          "claims": claims}, f, indent=2)
    labels = list(dict.fromkeys([r["a"] for r in result["pairs"]] +
                                [r["b"] for r in result["pairs"]]))
    plots.pvalue_heatmap(labels, result["pairs"], os.path.join(workdir,
                                                               "comparisons_pvalues.png"))
    for row in chart:  # cells without an interval (several seeds: a mean) get none drawn
        if row["low"] is None:
            row["low"] = row["high"] = row["accuracy"]
    plots.accuracy_intervals(chart, os.path.join(workdir, "accuracy_intervals.png"))
