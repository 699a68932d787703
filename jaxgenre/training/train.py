"""The training loop: prepared data, a model and a config in; the last and best train
states and the per-epoch history out. Every output (console, progress bar,
metrics.jsonl, figures) goes through the `writer` it is given; checkpoints, which are
part of training (resume, best-state selection), are written here.

Resume is per epoch: checkpoints are saved at epoch ends, and a run started again in
the same directory continues at the epoch after the newest readable one. Because each
epoch's batches are a pure function of (seed, epoch) and the step keys of (seed, step),
the resumed run ends bit-identical to an uninterrupted one (tests/test_train_run.py).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgenre import checkpoint, compile_cache, faults, models, parallel
from jaxgenre.training import augment, dispatch, feeds, selection, steps as steps_lib
from jaxgenre.data import pipeline
from jaxgenre.data.prepare import PreparedData
from jaxgenre.models import adapter
from jaxgenre.training.init_weights import initial_variables

STUDY_EPOCHS = 50


@dataclasses.dataclass
class Trained:
    """What `train` returns: the state after the last epoch, the best by validation
    accuracy (what tests use), one dict per epoch trained in this call, and how the
    weights were initialised."""
    state: Any
    best_state: Any
    history: List[Dict]
    initialisation: str
    epochs: int
    best_valid_accuracy: float
    steps: steps_lib.Steps
    feed: feeds.Feed  # how batches reached the steps; evaluates the test part the same way


def resolve_epochs(config) -> int:
    """`config.train.epochs`, or when None: the study's 50 on real data (folder, tfds)
    and `config.data.synthetic.epochs` on the built-in synthetic set."""
    if config.train.epochs is not None:
        return config.train.epochs
    return config.data.synthetic.epochs if config.data.source == "synthetic" else STUDY_EPOCHS


def epoch_segments(config, data: PreparedData, epoch: int) -> pipeline.Segments:
    """The training windows of `epoch`: the fixed tiles, or with `augment.random_crop`
    windows at random positions (`pipeline.random_crops`, drawn from (seed, epoch))."""
    tiles = data.parts["train"]
    aug = config.augment
    if not aug.random_crop:
        return tiles
    return pipeline.random_crops(tiles, data.store.features.shape[-1], seed=config.seed,
                                 epoch=epoch, per_clip=aug.crops_per_clip)


def best_key(record: Dict, select: str) -> Optional[list]:
    """The best epoch's key so far (`selection.key`, as stored), None before the first
    epoch. A record written before `train.select` existed holds only the best accuracy:
    that is the study rule's key; under another rule the next epoch starts afresh."""
    if "best_key" in record:
        return record["best_key"]
    if select == "accuracy" and record.get("best_valid_accuracy", -1.0) >= 0:
        return [record["best_valid_accuracy"]]
    return None


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a run's training is made of, apart from its seed (so the seeds of
    `vectorized.train_seeds` share one): mesh, input adapter, optimiser, augmentation,
    the steps jitted over the mesh, epochs and steps per epoch, one sample input."""
    mesh: Any
    adapt: Any
    tx: Any
    augmentation: augment.Augmentation
    steps: steps_lib.Steps
    steps_per_epoch: int
    n_epochs: int
    sample: jax.Array


def create_setup(config, data: PreparedData, model) -> Setup:
    """The `Setup` of `config` for `model` on `data` (the steps jitted, nothing run)."""
    mesh = parallel.data_mesh()
    adapt = adapter.for_model(config.model, data.feature)
    train_segs = epoch_segments(config, data, 0)
    steps_per_epoch = len(train_segs) // config.train.batch_size
    n_epochs = resolve_epochs(config)
    tx = steps_lib.create_optimizer(config.optim, steps_per_epoch * n_epochs,
                                    **models.optimizer_options(config.model))
    augmentation = augment.from_config(config, data.feature)
    return Setup(mesh=mesh, adapt=adapt, tx=tx, augmentation=augmentation,
                 steps=steps_lib.compile_steps(model, tx, adapt, mesh, augmentation),
                 steps_per_epoch=steps_per_epoch, n_epochs=n_epochs,
                 sample=jnp.zeros((1,) + data.feature.example_shape(train_segs.length)))


def initial_state(config, data: PreparedData, model, setup: Setup, warn
                  ) -> Tuple[steps_lib.TrainState, str]:
    """(`config.seed`'s fresh state, on the host; how its weights were initialised)."""
    key = jax.random.PRNGKey(config.seed)
    variables, init_note, warning = initial_variables(config, len(data.class_names), key)
    if warning:
        warn(warning)
    return (steps_lib.create_train_state(key, model, setup.tx, setup.adapt(setup.sample),
                                         variables), init_note)


def create_feed(config, data: PreparedData, model, setup: Setup, warn, *,
                seeds: bool = False) -> feeds.Feed:
    """`feeds.create` with the scans of this setup (over seeds when `seeds`)."""
    return feeds.create(config, data.store, data.parts, setup.mesh, setup.steps,
                        lambda length: dispatch.compile_dispatch(
                            model, setup.tx, setup.adapt, setup.mesh, setup.augmentation,
                            window_length=length, seeds=seeds), warn, seeds=seeds)


def end_epoch(config, data: PreparedData, feed: feeds.Feed, state, totals, record: Dict,
              *, epoch: int, steps_per_epoch: int, start: float, compiled
              ) -> Tuple[Dict, Dict, bool]:
    """After `epoch`'s steps: validation, the selection rule, and (the epoch's line for
    metrics.jsonl, the new checkpoint record, whether this epoch is the new best)."""
    totals = jax.device_get(totals)
    part = (feed.evaluate(state, data.parts["valid"], batch_size=config.eval.batch_size,
                          clip_mean=config.eval.clip_mean)
            if len(data.parts["valid"]) else None)
    valid = part["clips"] if part else None
    valid_accuracy = valid["accuracy"] if valid else 0.0
    valid_loss = (selection.clip_log_loss(part["per_clip"]["labels"],
                                          part["per_clip"]["probabilities"])
                  if part else None)
    select = config.train.select  # selection.RULES
    epoch_key = selection.key(select, accuracy=valid_accuracy, loss=valid_loss)
    improved = selection.improves(select, epoch_key, best_key(record, select))
    record = {"epoch": epoch + 1,
              "best_valid_accuracy": max(valid_accuracy, record["best_valid_accuracy"]),
              "best_key": (selection.stored(epoch_key) if improved
                           else best_key(record, select)),
              "selected_epoch": epoch + 1 if improved else record.get("selected_epoch")}
    line = {"epoch": epoch + 1, "step": int(jax.device_get(state.step)),
            "train_loss": float(totals["loss"]) / steps_per_epoch,
            "train_accuracy": float(totals["correct"]) / max(float(totals["count"]), 1.0),
            "valid_accuracy": valid_accuracy,
            "valid_macro_f1": valid["macro_f1"] if valid else None,
            "valid_loss": valid_loss,
            "seconds": time.perf_counter() - start}
    # of those seconds, compiling (tracing, lowering, XLA), and executables the
    # persistent cache gave instead
    spent = compile_cache.CLOCK.read().since(compiled)
    line.update(compile_seconds=spent.seconds, compile_cache_hits=spent.cache_hits)
    return line, record, improved


def train_epoch(feed: feeds.Feed, state, totals, dispatches, *, writers, epoch: int,
                setup: Setup, batch_size: int, log_every: int, start: float):
    """`epoch`'s dispatches through `feed.train`: (state, totals) after them, with the
    first writer's progress bar and, every `log_every` steps, each run's last loss to
    its writer. One writer per seed of a vectorised run, whose losses come as (seeds,
    steps); one writer otherwise."""
    rows, done = len(writers), 0
    desc = f"epoch {epoch + 1}/{setup.n_epochs}" + (f", {rows} seeds" if rows > 1 else "")
    with writers[0].progress(None, total=setup.steps_per_epoch, unit="step",
                             desc=desc) as bar:
        for n, inputs in dispatches:
            faults.point("train_step")
            state, totals, losses = feed.train(state, totals, inputs)
            bar.update(n)
            if (done + n) // log_every > done // log_every:  # the only host sync
                rate = rows * (done + n) * batch_size / (time.perf_counter() - start)
                last = np.asarray(losses).reshape(rows, -1)[:, -1]
                bar.set_postfix(loss=" ".join(f"{x:.3f}" for x in last),
                                seg_per_s=f"{rate:.1f}")
                for writer, loss in zip(writers, last):
                    writer.step(epoch * setup.steps_per_epoch + done + n,
                                {"loss": float(loss), "segments_per_second": rate})
            done += n
    return state, totals


def save_due(config, epoch: int, n_epochs: int, improved: bool) -> bool:
    """Whether `epoch` ends with a checkpoint: a new best, the last, every checkpoint_every."""
    return improved or epoch + 1 == n_epochs or (epoch + 1) % config.train.checkpoint_every == 0


NEW_RECORD = {"epoch": 0, "best_valid_accuracy": -1.0}


def train(config, data: PreparedData, model, *, workdir: str, writer) -> Trained:
    """Trains `model` on `data.parts['train']`, validating every epoch, keeping the last
    `config.train.keep` checkpoints and the best one under `<workdir>/checkpoints`;
    resumes from there. `writer` is a `writer.RunWriter` (or anything with its methods)."""
    setup = create_setup(config, data, model)
    steps_per_epoch, n_epochs, batch_size = (setup.steps_per_epoch, setup.n_epochs,
                                             config.train.batch_size)
    state, init_note = initial_state(config, data, model, setup, writer.warn)
    state = jax.device_put(state, parallel.replicated(setup.mesh))
    feed = create_feed(config, data, model, setup, writer.warn)
    writer.say(feed.description)
    ckpt = checkpoint.Checkpoints(workdir, keep=config.train.keep, warn=writer.warn,
                                  use_async=config.train.async_checkpoints)
    record = dict(NEW_RECORD)
    restored = ckpt.restore_latest(checkpoint.abstract(state))
    if restored:
        state, record = restored
    writer.starts_at(record["epoch"], step=int(jax.device_get(state.step)))
    history, log_every = [], config.train.log_every
    for epoch in range(record["epoch"], n_epochs):
        start, compiled = time.perf_counter(), compile_cache.CLOCK.read()
        state, totals = train_epoch(
            feed, state, dispatch.zero_sums(setup.mesh),
            feed.epoch(epoch_segments(config, data, epoch), batch_size=batch_size,
                       seed=config.seed, epoch=epoch),
            writers=[writer], epoch=epoch, setup=setup, batch_size=batch_size,
            log_every=log_every, start=start)
        line, record, improved = end_epoch(config, data, feed, state, totals, record,
                                           epoch=epoch, steps_per_epoch=steps_per_epoch,
                                           start=start, compiled=compiled)
        history.append(line)
        writer.epoch(line)
        if save_due(config, epoch, n_epochs, improved):
            ckpt.save(state, record, best=improved, rank=epoch + 1)
    best = ckpt.restore_best(checkpoint.abstract(state))
    ckpt.close()
    return Trained(state=state, best_state=best[0] if best else state, history=history,
                   initialisation=init_note, epochs=n_epochs,
                   best_valid_accuracy=record["best_valid_accuracy"], steps=setup.steps,
                   feed=feed)
