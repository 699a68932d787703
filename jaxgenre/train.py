"""Training as pure functions: the train state pytree, the optimiser, and the jitted
train / eval steps over a device mesh.

    state = create_train_state(key, model, tx, sample_input)   # or from ported weights
    steps = compile_steps(model, tx, adapt, mesh)
    state, metrics = steps.train(state, batch)                  # batch sharded on 'data'
    probabilities = steps.evaluate(state, batch)

The state is replicated over the mesh and the batch split along 'data', so one step
on 8 devices computes exactly what one step on 1 device computes for the same global
batch (tested). Randomness (dropout, stochastic depth) comes from `fold_in(state.rng,
state.step)`: a pure function of the seed and the step, so a resumed run continues
with the same keys.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
from typing import Any, Callable, Dict, Tuple

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from tqdm import tqdm

from jaxgenre import checkpoint, evaluate, models, parallel, plots, report
from jaxgenre.data import pipeline, prefetch, prepare
from jaxgenre.models import adapter

Batch = Dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array  # fixed; step keys are fold_in(rng, step)


def create_optimizer(optim, total_steps: int) -> optax.GradientTransformation:
    """`config.optim` → optax: adam / adamw (weight_decay > 0) / sgd (momentum 0.9),
    with a 'constant', 'cosine' or 'warmup_cosine' (5% warm-up) learning rate."""
    lr = optim.learning_rate
    total_steps = max(int(total_steps), 1)
    schedules = {
        "constant": lambda: lr,
        "cosine": lambda: optax.cosine_decay_schedule(lr, total_steps),
        "warmup_cosine": lambda: optax.warmup_cosine_decay_schedule(
            0.0, lr, max(1, total_steps // 20), total_steps),
    }
    if optim.schedule not in schedules:
        raise ValueError(f"optim.schedule must be one of {sorted(schedules)}, "
                         f"got {optim.schedule!r}")
    schedule = schedules[optim.schedule]()
    if optim.name == "adam":
        if optim.weight_decay:
            return optax.adamw(schedule, weight_decay=optim.weight_decay)
        return optax.adam(schedule)
    if optim.name == "sgd":
        return optax.chain(optax.add_decayed_weights(optim.weight_decay),
                           optax.sgd(schedule, momentum=0.9))
    raise ValueError(f"optim.name must be 'adam' or 'sgd', got {optim.name!r}")


def create_train_state(key: jax.Array, model, tx: optax.GradientTransformation,
                       sample_input: jax.Array, variables: Dict = None) -> TrainState:
    """A fresh state: `variables` (e.g. ported ImageNet weights) or `model.init`."""
    init_key, step_key = jax.random.split(key)
    if variables is None:
        variables = jax.jit(functools.partial(model.init, train=False))(init_key, sample_input)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get("batch_stats", {}),
                      opt_state=tx.init(params), rng=step_key)


def train_step(state: TrainState, batch: Batch, *, model, tx, adapt: Callable
               ) -> Tuple[TrainState, Dict[str, jax.Array]]:
    """One optimiser step on the batch's masked mean cross-entropy."""
    key = jax.random.fold_in(state.rng, state.step)
    inputs, labels, mask = adapt(batch["inputs"]), batch["labels"], batch["mask"]

    def loss_fn(params):
        logits, updated = model.apply({"params": params, "batch_stats": state.batch_stats},
                                      inputs, train=True, rngs={"dropout": key},
                                      mutable=["batch_stats"])
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        loss = jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1.0)
        return loss, (logits, updated["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    state = state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                          batch_stats=batch_stats, opt_state=opt_state)
    correct = jnp.sum((jnp.argmax(logits, -1) == labels) * mask)
    return state, {"loss": loss, "correct": correct, "count": jnp.sum(mask)}


def eval_step(state: TrainState, batch: Batch, *, model, adapt: Callable) -> jax.Array:
    """Class probabilities (batch, classes), float32, BatchNorm on running statistics."""
    logits = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                         adapt(batch["inputs"]), train=False)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


@dataclasses.dataclass(frozen=True)
class Steps:
    train: Callable[[TrainState, Batch], Tuple[TrainState, Dict[str, jax.Array]]]
    evaluate: Callable[[TrainState, Batch], jax.Array]


def compile_steps(model, tx, adapt: Callable, mesh: Mesh) -> Steps:
    """The steps jitted over `mesh`: state replicated (and donated), batch on 'data'."""
    state_sharding, data = parallel.replicated(mesh), parallel.batch_sharding(mesh)
    train = jax.jit(functools.partial(train_step, model=model, tx=tx, adapt=adapt),
                    in_shardings=(state_sharding, data),
                    out_shardings=(state_sharding, state_sharding), donate_argnums=0)
    evaluate = jax.jit(functools.partial(eval_step, model=model, adapt=adapt),
                       in_shardings=(state_sharding, data), out_shardings=data)
    return Steps(train=train, evaluate=evaluate)


# ------------------------------------------------------------------- the training run

STUDY_EPOCHS = 50


def resolve_epochs(config) -> int:
    """`config.train.epochs`, or when None: the study's 50 on real data (folder, tfds)
    and `config.data.synthetic.epochs` on the built-in synthetic set."""
    if config.train.epochs is not None:
        return config.train.epochs
    return config.data.synthetic.epochs if config.data.source == "synthetic" else STUDY_EPOCHS


def _initial_variables(config, model_name: str, num_classes: int, key) -> Tuple[Dict, str]:
    """Ported ImageNet weights when asked for and present; otherwise None (random init)
    and a note saying why, which goes into the run's results."""
    from jaxgenre.models import torchvision_port

    if not config.model.pretrained or model_name not in torchvision_port.CHECKPOINTS:
        return None, "random initialisation"
    try:
        return (torchvision_port.load_imagenet(model_name, num_classes, key=key),
                "ImageNet weights (torchvision)")
    except FileNotFoundError as e:
        print(f"WARNING: {e} Training starts from random initialisation instead.",
              file=sys.stderr)
        return None, f"random initialisation: ImageNet weights not found ({e})"


def train_and_evaluate(config, workdir: str) -> Dict:
    """Trains `config.model` on `config.data` / `config.features`, keeps the best
    validation checkpoint, evaluates it on the test part and writes `results.json`.
    Re-running with the same workdir resumes from the latest checkpoint. In a
    multi-process run, call `parallel.initialize_distributed` first (launch.py does)."""
    data = prepare.prepare_data(config, workdir)
    print(prepare.describe(data))
    mesh = parallel.data_mesh()
    name, n_classes = config.model.name, len(data.class_names)
    model = models.create(name, n_classes, dtype=config.model.dtype)
    adapt = adapter.for_model(config.model)
    train_segs, batch_size = data.parts["train"], config.train.batch_size
    if jax.process_index() == 0:  # what `python -m jaxgenre.predict` needs to rebuild the model
        with open(os.path.join(workdir, "run.json"), "w") as f:
            json.dump({"config": json.loads(config.to_json()), "segment_steps": train_segs.length,
                       "class_names": list(data.class_names)}, f, indent=2)
    steps_per_epoch = len(train_segs) // batch_size
    if jax.process_count() > 1:
        local = batch_size // jax.process_count()
        print(f"process {jax.process_index()} of {jax.process_count()}: loads rows "
              f"{jax.process_index() * local}..{(jax.process_index() + 1) * local - 1} of "
              f"every global batch of {batch_size}; {jax.local_device_count()} of "
              f"{jax.device_count()} devices are local")
    key = jax.random.PRNGKey(config.seed)
    n_epochs = resolve_epochs(config)
    tx = create_optimizer(config.optim, steps_per_epoch * n_epochs)
    variables, init_note = _initial_variables(config, name, n_classes, key)
    sample = jnp.zeros((1,) + data.store.features.shape[1:-1] + (train_segs.length,))
    state = jax.device_put(create_train_state(key, model, tx, adapt(sample), variables),
                           parallel.replicated(mesh))
    steps = compile_steps(model, tx, adapt, mesh)
    ckpt = checkpoint.Checkpoints(workdir, keep=config.train.keep)
    record = {"epoch": 0, "best_valid_accuracy": -1.0}
    restored = ckpt.restore_latest(checkpoint.abstract(state))
    if restored:
        state, record = restored
        print(f"resuming from {workdir}/checkpoints at epoch {record['epoch']}")
    evaluate_part = lambda st, part: evaluate.evaluate(
        steps.evaluate, st, data.store, data.parts[part], batch_size=config.eval.batch_size,
        mesh=mesh)
    for epoch in range(record["epoch"], n_epochs):
        start, totals = time.perf_counter(), None
        batches = prefetch.prefetch_to_mesh(
            pipeline.iterate_batches(data.store, train_segs, batch_size=batch_size,
                                     seed=config.seed, epoch=epoch, train=True),
            mesh, size=config.train.get("prefetch", 2))
        with tqdm(batches, total=steps_per_epoch, unit="step", leave=False,
                  desc=f"epoch {epoch + 1}/{n_epochs}",
                  disable=jax.process_index() != 0) as bar:
            for i, batch in enumerate(bar):
                state, m = steps.train(state, batch)
                totals = m if totals is None else jax.tree.map(jnp.add, totals, m)
                if (i + 1) % config.train.log_every == 0:  # the only per-step host sync
                    rate = (i + 1) * batch_size / (time.perf_counter() - start)
                    bar.set_postfix(loss=f"{float(m['loss']):.3f}", seg_per_s=f"{rate:.1f}")
        totals = jax.device_get(totals)
        valid = evaluate_part(state, "valid")["clips"] if len(data.parts["valid"]) else None
        valid_accuracy = valid["accuracy"] if valid else 0.0
        improved = valid_accuracy > record["best_valid_accuracy"]
        record = {"epoch": epoch + 1,
                  "best_valid_accuracy": max(valid_accuracy, record["best_valid_accuracy"])}
        line = {"epoch": epoch + 1, "step": int(jax.device_get(state.step)),
                "train_loss": float(totals["loss"]) / steps_per_epoch,
                "train_accuracy": float(totals["correct"]) / max(float(totals["count"]), 1.0),
                "valid_accuracy": valid_accuracy,
                "valid_macro_f1": valid["macro_f1"] if valid else None,
                "seconds": time.perf_counter() - start}
        print(json.dumps(line))
        if jax.process_index() == 0:
            with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
                f.write(json.dumps(line) + "\n")
        last = epoch + 1 == n_epochs
        if improved or last or (epoch + 1) % config.train.checkpoint_every == 0:
            ckpt.save(state, record, best=improved)
    best = ckpt.restore_best(checkpoint.abstract(state))
    ckpt.close()
    best_state = best[0] if best else state
    test = evaluate_part(best_state, "test")
    results = {"model": name, "feature": config.features.kind, "data": config.data.source,
               "initialisation": init_note, "epochs": n_epochs,
               "best_valid_accuracy": record["best_valid_accuracy"],
               "test": {level: {k: v for k, v in rep.items() if k != "roc_curves"}
                        for level, rep in test.items()}}
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
    print(report.format_test_results(test, name, config.features.kind, config.data.source))
    if config.eval.plots and jax.process_index() == 0:
        panel = os.path.join(workdir, "features_per_class.png")
        plots.class_panel(data.source, dict(config.features), panel)
        for path in plots.run_figures(test, workdir, f"{name} / {config.features.kind}") + [panel]:
            print(f"wrote {path}")
    return {"results": results, "test": test, "state": best_state}
