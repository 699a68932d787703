"""Looking back at one finished ablation run: which epoch each rule of
`config.train.select` keeps (replayed from the run's metrics.jsonl, as training compares
them), and that epoch's test clips under each way of cutting and combining test windows
— without training again. Needs every epoch's checkpoint (the ablation sets
`train.keep` to the number of epochs); writes `<run>/selection_eval.json` and then drops
the checkpoints no rule keeps.

The study's rule and windows are what `results.json` already holds; the other rules
and windows are what the same training would have given under them, with one
difference from a run configured with them: validation (and so the rule's choice) used
the run's own windows.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Dict, List

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgenre import checkpoint, models, parallel
from jaxgenre.training import augment, evaluate
from jaxgenre.results import metrics
from jaxgenre.training import selection
from jaxgenre.training import steps as steps_lib
from jaxgenre.training import train as train_lib
from jaxgenre.data import prepare
from jaxgenre.models import adapter

# (name, window overlap, clip mean): the study's tiles first, the recipe's windows last.
EVALS = (("tiles, mean probability", 0.0, "probability"),
         ("overlap 0.5, mean probability", 0.5, "probability"),
         ("overlap 0.5, mean log-probability", 0.5, "log_probability"))
FILE = "selection_eval.json"


def epoch_lines(run_dir: str) -> List[Dict]:
    """The run's metrics.jsonl, one dict per epoch."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def own_eval(config) -> str:
    """The EVALS entry that is a config's own test windows."""
    key = (float(config.eval.window_overlap or 0.0), config.eval.clip_mean)
    return next(name for name, overlap, mean in EVALS if (overlap, mean) == key)


def chosen_epochs(lines: List[Dict]) -> Dict[str, int]:
    """The epoch (1-based) each selection rule keeps, replaying `selection` over the
    epochs' validation accuracy and loss in order, as `train.train` does."""
    out = {}
    for rule in selection.RULES:
        best, epoch = None, None
        for line in lines:
            k = selection.key(rule, accuracy=line["valid_accuracy"], loss=line.get("valid_loss"))
            if selection.improves(rule, k, best):
                best, epoch = k, line["epoch"]
        out[rule] = epoch
    return out


def _with(config, **eval_overrides) -> ml_collections.ConfigDict:
    copy = ml_collections.ConfigDict(config.to_dict())
    copy.eval.update(eval_overrides)
    return copy


def evaluate_run(config, run_dir: str, *, drop_checkpoints: bool = True) -> Dict:
    """Writes and returns `<run_dir>/selection_eval.json`: {"epochs": {rule: epoch},
    "test": {epoch: {eval name: {"clip_ids", "labels", "predictions"}}}}. Reuses the
    file when it is already there."""
    path = os.path.join(run_dir, FILE)
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    lines = epoch_lines(run_dir)
    epochs = chosen_epochs(lines)
    step_of = {line["epoch"]: line["step"] for line in lines}
    mesh = parallel.data_mesh()
    parts = {overlap: prepare.prepare_data(_with(config, window_overlap=overlap), run_dir,
                                           progress=False)
             for overlap in sorted({e[1] for e in EVALS})}
    data = parts[0.0]
    model = models.create(config.model.name, len(data.class_names),
                          **models.constructor_options(config.model))
    adapt = adapter.for_model(config.model, data.feature)
    segs = train_lib.epoch_segments(config, data, 0)
    tx = steps_lib.create_optimizer(config.optim, len(segs) // config.train.batch_size
                                    * train_lib.resolve_epochs(config),
                                    **models.optimizer_options(config.model))
    sample = jnp.zeros((1,) + data.feature.example_shape(segs.length))
    state = jax.device_put(
        steps_lib.create_train_state(jax.random.PRNGKey(config.seed), model, tx, adapt(sample)),
        parallel.replicated(mesh))
    predict = steps_lib.compile_steps(model, None, adapt, mesh,
                                      augment.from_config(config, data.feature)).predict
    ckpt = checkpoint.Checkpoints(run_dir, keep=len(lines))
    test = {}
    for epoch in sorted(set(epochs.values())):
        restored, _ = ckpt.restore_step(step_of[epoch], checkpoint.abstract(state))
        test[str(epoch)] = {}
        segment_results = {  # once per way of cutting: both means vote on the same windows
            overlap: evaluate.segment_probabilities(
                predict, restored, prepared.store, prepared.parts["test"],
                batch_size=config.eval.batch_size, mesh=mesh)
            for overlap, prepared in parts.items()}
        for name, overlap, mean in EVALS:
            prepared = parts[overlap]
            probs, labels, clips = segment_results[overlap]
            ids, clip_probs, clip_labels = metrics.vote(probs, clips, labels, mean=mean)
            test[str(epoch)][name] = {
                "clip_ids": [str(prepared.store.clip_ids[i]) for i in ids],
                "labels": np.asarray(clip_labels).tolist(),
                "predictions": np.asarray(clip_probs).argmax(axis=1).tolist()}
    ckpt.close()
    out = {"epochs": epochs, "test": test}
    with open(path, "w") as f:
        json.dump(out, f)
    if drop_checkpoints:  # ~12 MB an epoch for SpectralCNN: keep what a rule keeps
        keep = {str(step_of[e]) for e in epochs.values()}
        last = os.path.join(run_dir, "checkpoints", "last")
        for step in checkpoint.steps_in(last):
            if str(step) not in keep:
                shutil.rmtree(os.path.join(last, str(step)))
    return out


def from_results(config, run_dir: str) -> Dict:
    """What a finished run without its epochs' checkpoints still tells (one copied back
    from a GPU, or run before ablation_eval existed): its own rule's epoch under its own
    test windows, from results.json's record and test_predictions.csv; other rules and
    windows are missing (the tables print n/a)."""
    from jaxgenre.results import clip_table

    lines = epoch_lines(run_dir)
    rule = config.train.select
    epoch = chosen_epochs(lines)[rule]
    table = clip_table.read(os.path.join(run_dir, "test_predictions.csv"))
    own = own_eval(config)
    return {"epochs": {rule: epoch}, "partial": True,
            "test": {str(epoch): {own: {"clip_ids": list(table.clip_ids),
                                        "labels": table.labels.tolist(),
                                        "predictions": table.probabilities.argmax(1).tolist()}}}}


def load(config, run_dir: str, *, evaluate_missing: bool = True) -> Dict:
    """selection_eval.json when there; else evaluated now (when `evaluate_missing` and
    the run kept its epochs), else `from_results`."""
    if os.path.isfile(os.path.join(run_dir, FILE)):
        return evaluate_run(config, run_dir)  # reads it
    lines = epoch_lines(run_dir)
    step_of = {line["epoch"]: line["step"] for line in lines}
    needed = {step_of[e] for e in chosen_epochs(lines).values()}
    kept = set(checkpoint.steps_in(os.path.join(run_dir, "checkpoints", "last")))
    if evaluate_missing and needed <= kept:
        return evaluate_run(config, run_dir)
    return from_results(config, run_dir)


def correct(evaluation: Dict, rule: str, eval_name: str) -> Dict[str, bool]:
    """{clip id: right?} for the epoch `rule` keeps, under the test windows `eval_name`;
    a `KeyError` when the evaluation does not have them (`from_results`)."""
    test = evaluation["test"][str(evaluation["epochs"][rule])][eval_name]
    return {c: y == p for c, y, p in zip(test["clip_ids"], test["labels"], test["predictions"])}


def reproduces_results(config, run_dir: str, evaluation: Dict) -> bool:
    """Whether the replayed rule of the run's own config, under its own test windows,
    gives the test clip accuracy its results.json holds (a check on the replay and the
    re-evaluation from kept checkpoints)."""
    right = correct(evaluation, config.train.select, own_eval(config))
    with open(os.path.join(run_dir, "results.json")) as f:
        recorded = json.load(f)["test"]["clips"]["accuracy"]
    return abs(sum(right.values()) / len(right) - recorded) < 1e-12
