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

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxgenre import checkpoint, compile_cache, faults, models, parallel
from jaxgenre.training import augment, dispatch, feeds, selection, steps as steps_lib
from jaxgenre.data import pipeline
from jaxgenre.data.prepare import PreparedData
from jaxgenre.errors import UserError
from jaxgenre.models import adapter, torchvision_port

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


def initial_variables(config, num_classes: int, key) -> Tuple[Optional[Dict], str, str]:
    """(ported ImageNet variables or None, a note for results.json, a warning or '').
    ImageNet weights are used when `config.model.pretrained` and the model's spec has a
    checkpoint: `config.model.checkpoint` (a path or URL, checked against
    `checkpoint_sha256` if given) or torchvision's file, fetched into torch's hub cache
    with its full sha256 when missing. torchvision's file that cannot be had falls back
    to random initialisation with a warning; a file that is there but wrong, or a
    `checkpoint` that cannot be had, is a `UserError`."""
    name = config.model.name
    spec = models.get_spec(name)
    if config.model.pretrained and spec.tagger_weights:
        return tagger_variables(config.model, num_classes, key), (
            f"musicnn's {config.model.weights}_{spec.tagger_weights} weights, a new head"), ""
    if config.model.pretrained and spec.audioset:
        own = config.model.checkpoint
        return audioset_variables(config.model, num_classes, key), (
            f"PANNs' AudioSet weights ({own or spec.audioset.file}), a new head"), ""
    if not config.model.pretrained or spec.imagenet is None:
        return None, "random initialisation", ""
    own, own_sha256 = config.model.checkpoint, config.model.checkpoint_sha256
    try:
        path = torchvision_port.checkpoint_file(name, own, sha256=own_sha256)
        variables = torchvision_port.load_imagenet(name, num_classes, path if own else None,
                                                   key=key, sha256=own_sha256)
    except FileNotFoundError as e:
        if own:  # weights the user named: no silent fallback
            raise UserError(f"config.model.checkpoint={own!r} cannot be had: {e}") from None
        return (None, f"random initialisation: ImageNet weights not found ({e})",
                f"{e} Training starts from random initialisation instead.")
    return variables, ("ImageNet weights (torchvision)" if not own
                       else f"ImageNet weights ({own})"), ""


def tagger_variables(model_config, num_classes: int, key) -> Dict:
    """musicnn's pretrained variables (`model.weights`: MSD or MTT) with the tagging head
    replaced by a freshly initialised one of `num_classes` outputs."""
    from jaxgenre.models import musicnn_port

    spec = models.get_spec(model_config.name)
    variables = musicnn_port.load_pretrained(f"{model_config.weights}_{spec.tagger_weights}")
    model = models.create(model_config.name, num_classes)
    sample = jnp.zeros((1,) + musicnn_port.INPUT_SHAPE)
    fresh = jax.jit(lambda k: model.init(k, sample, train=False))(jax.random.fold_in(key, 1))
    params = dict(variables["params"])
    for name in spec.head_names():
        params[name] = fresh["params"][name]
    return {"params": params, "batch_stats": variables["batch_stats"]}


def audioset_variables(model_config, num_classes: int, key) -> Dict:
    """PANNs' AudioSet variables (`model.checkpoint`, checked against
    `model.checkpoint_sha256`, else the published file, fetched and checked against its
    md5) with the 527-class head replaced by a fresh one of `num_classes` outputs,
    initialised as the model initialises it. Weights that cannot be had are a
    `UserError`: a probe of an untrained backbone would measure nothing."""
    from jaxgenre.models import panns, panns_port

    try:
        variables = panns_port.load_pretrained(model_config.checkpoint,
                                               sha256=model_config.checkpoint_sha256)
    except FileNotFoundError as e:
        raise UserError(f"{e} Or train CNN14 from random weights: --config.model."
                        f"pretrained=False --config.model.freeze_backbone=False") from None
    width, _ = panns_port.width_and_classes(variables)
    model_width = models.create(model_config.name, num_classes).width
    if width != model_width:
        raise UserError(f"'{model_config.checkpoint}' holds a CNN14 of width {width} "
                        f"({width} maps in its first block); {model_config.name} has width "
                        f"{model_width}: give a checkpoint of the paper's CNN14")
    head = panns.CHECKPOINT.head
    fresh = flax.linen.Dense(num_classes, kernel_init=panns.INIT).init(
        jax.random.fold_in(key, 1), jnp.zeros((1, width * 32)))["params"]
    return {"params": {**variables["params"], head: fresh},
            "batch_stats": variables["batch_stats"]}


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


def train(config, data: PreparedData, model, *, workdir: str, writer) -> Trained:
    """Trains `model` on `data.parts['train']`, validating every epoch, keeping the last
    `config.train.keep` checkpoints and the best one under `<workdir>/checkpoints`;
    resumes from there. `writer` is a `writer.RunWriter` (or anything with its methods)."""
    mesh = parallel.data_mesh()
    n_classes = len(data.class_names)
    adapt = adapter.for_model(config.model, data.feature)
    train_segs, batch_size = epoch_segments(config, data, 0), config.train.batch_size
    steps_per_epoch = len(train_segs) // batch_size
    clip_mean = config.eval.clip_mean
    key = jax.random.PRNGKey(config.seed)
    n_epochs = resolve_epochs(config)
    tx = steps_lib.create_optimizer(config.optim, steps_per_epoch * n_epochs,
                                    **models.optimizer_options(config.model))
    variables, init_note, warning = initial_variables(config, n_classes, key)
    if warning:
        writer.warn(warning)
    sample = jnp.zeros((1,) + data.feature.example_shape(train_segs.length))
    state = jax.device_put(steps_lib.create_train_state(key, model, tx, adapt(sample), variables),
                           parallel.replicated(mesh))
    augmentation = augment.from_config(config, data.feature)
    steps = steps_lib.compile_steps(model, tx, adapt, mesh, augmentation)
    feed = feeds.create(config, data.store, data.parts, mesh, steps, lambda length: (
        dispatch.compile_dispatch(model, tx, adapt, mesh, augmentation, window_length=length)),
        writer.warn)
    writer.say(feed.description)
    ckpt = checkpoint.Checkpoints(workdir, keep=config.train.keep, warn=writer.warn,
                                  use_async=config.train.async_checkpoints)
    record = {"epoch": 0, "best_valid_accuracy": -1.0}
    select = config.train.select  # selection.RULES
    restored = ckpt.restore_latest(checkpoint.abstract(state))
    if restored:
        state, record = restored
        writer.resumed(record["epoch"], step=int(jax.device_get(state.step)))
    history, log_every = [], config.train.log_every
    for epoch in range(record["epoch"], n_epochs):
        start, compiled = time.perf_counter(), compile_cache.CLOCK.read()
        totals, done = dispatch.zero_sums(), 0
        with writer.progress(None, total=steps_per_epoch, unit="step",
                             desc=f"epoch {epoch + 1}/{n_epochs}") as bar:
            for n, inputs in feed.epoch(epoch_segments(config, data, epoch),
                                        batch_size=batch_size, seed=config.seed, epoch=epoch):
                faults.point("train_step")
                state, totals, losses = feed.train(state, totals, inputs)
                bar.update(n)
                if (done + n) // log_every > done // log_every:  # the only host sync
                    rate = (done + n) * batch_size / (time.perf_counter() - start)
                    loss = float(np.asarray(losses).reshape(-1)[-1])
                    bar.set_postfix(loss=f"{loss:.3f}", seg_per_s=f"{rate:.1f}")
                    writer.step(epoch * steps_per_epoch + done + n,
                                {"loss": loss, "segments_per_second": rate})
                done += n
        totals = jax.device_get(totals)
        part = (feed.evaluate(state, data.parts["valid"], batch_size=config.eval.batch_size,
                              clip_mean=clip_mean)
                if len(data.parts["valid"]) else None)
        valid = part["clips"] if part else None
        valid_accuracy = valid["accuracy"] if valid else 0.0
        valid_loss = (selection.clip_log_loss(part["per_clip"]["labels"],
                                              part["per_clip"]["probabilities"])
                      if part else None)
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
        history.append(line)
        writer.epoch(line)
        last = epoch + 1 == n_epochs
        if improved or last or (epoch + 1) % config.train.checkpoint_every == 0:
            ckpt.save(state, record, best=improved, rank=epoch + 1)
    best = ckpt.restore_best(checkpoint.abstract(state))
    ckpt.close()
    return Trained(state=state, best_state=best[0] if best else state, history=history,
                   initialisation=init_note, epochs=n_epochs,
                   best_valid_accuracy=record["best_valid_accuracy"], steps=steps,
                   feed=feed)
