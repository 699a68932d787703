"""One row of `benchmarks/end_to_end.py`, measured in this process (the script runs
each row in a fresh process of itself): a spec in (model, feature sizes, settings, the
.npy of random features), the row's figures out; the script's docstring says what each
figure is. It imports JAX: import it after the platform is chosen."""

from __future__ import annotations

import resource
import time

import jax
import numpy as np

from configs import base
from jaxgenre import compile_cache, models, parallel
from jaxgenre.data import cache, pipeline
from jaxgenre.features import FeatureSpec
from jaxgenre.models import adapter
from jaxgenre.training import augment, dispatch, feeds, steps as steps_lib


def cell_config(spec: dict):
    """A row's config: the cell on base's defaults, random weights, the spec's settings."""
    config = base.cell(model=spec["model"], feature=spec["feature"])
    config.model.update(pretrained=False, dtype=spec["dtype"])
    config.data.update(clip_seconds=spec["clip_seconds"], cache_dtype=spec["cache_dtype"],
                       segment_seconds=spec["segment_seconds"])
    config.features.update(spec.get("features", {}))
    config.train.update(batch_size=spec["batch"], **spec.get("train", {}))
    config.eval.batch_size = spec["batch"]
    return config


def clip_shape(config) -> tuple:
    """One cached clip's feature shape: `config.features` of `clip_seconds` of audio."""
    feature = FeatureSpec.from_config(config.features)
    audio = jax.ShapeDtypeStruct((round(config.data.clip_seconds * feature.sr),), np.float32)
    return tuple(jax.eval_shape(feature.compute, audio).shape)


def write_features(spec: dict) -> None:
    """Standard normal features of the spec's clips, as its .npy `store`, a clip at a time."""
    shape = (sum(spec["clips"]),) + clip_shape(cell_config(spec))
    out = np.lib.format.open_memmap(spec["store"], "w+", spec["cache_dtype"], shape)
    for i in range(shape[0]):
        out[i] = np.random.default_rng(i).standard_normal(shape[1:], dtype=np.float32)
    out.flush()


def measure(spec: dict) -> dict:
    """One row, in this process (the module docstring says what is measured)."""
    if spec.get("cache_dir"):  # the first call decides, for the whole process
        compile_cache.enable(spec["cache_dir"], "", min_seconds=spec["cache_min_seconds"])
    jax.config.update("jax_enable_compilation_cache", bool(spec.get("cache_dir")))
    config, counts = cell_config(spec), spec["clips"]  # train, valid, test clips
    feature, batch, seed = FeatureSpec.from_config(config.features), spec["batch"], config.seed
    features, length = np.load(spec["store"], mmap_mode="r"), feature.frames(
        config.data.segment_seconds)
    store = cache.FeatureStore(path=spec["store"], features=features, hit=True,
                               clip_ids=tuple(f"c/{i}" for i in range(len(features))),
                               labels=np.arange(len(features), dtype=np.int32) % 10,
                               class_names=tuple(f"class{i}" for i in range(10)))
    parts = {name: pipeline.segments(np.arange(sum(counts[:i]), sum(counts[:i + 1])),
                                     features.shape[-1], segment_frames=length)
             for i, name in enumerate(("train", "valid", "test"))}
    mesh, steps_per_epoch = parallel.data_mesh(), len(parts["train"]) // batch
    model = models.create(config.model.name, 10, **models.constructor_options(config.model))
    tx = steps_lib.create_optimizer(config.optim, steps_per_epoch * (spec["epochs"] + 1),
                                    **models.optimizer_options(config.model))
    adapt, augmentation = adapter.for_model(config.model, feature), augment.from_config(
        config, feature)
    n, sample = spec.get("seeds", 0), adapt(np.zeros((1,) + feature.example_shape(length)))
    fresh = [jax.device_put(steps_lib.create_train_state(jax.random.PRNGKey(seed + i), model, tx,
                                                         sample), parallel.replicated(mesh))
             for i in range(max(n, 1))]  # n > 0: seeds seed .. seed + n - 1 vectorised
    state = dispatch.stack(fresh) if n else fresh[0]
    zero = lambda: (dispatch.stack([dispatch.zero_sums(mesh)] * n) if n
                    else dispatch.zero_sums(mesh))
    said, kept, sizes = [], {}, []  # the feed's warnings; inputs kept for step-only epochs
    feed = feeds.create(config, store, parts, mesh, steps_lib.compile_steps(
        model, tx, adapt, mesh, augmentation), lambda window: dispatch.compile_dispatch(
            model, tx, adapt, mesh, augmentation, window_length=window, seeds=bool(n)),
        said.append, seeds=bool(n))

    def run(dispatches, keep: bool = False) -> float:
        """Seconds to train the dispatches, as `train.train`'s epoch loop trains them."""
        nonlocal state
        start, sums, done = time.perf_counter(), zero(), 0
        for count, xs in dispatches:
            if keep:  # one input of each dispatch size
                kept.setdefault(count, xs)
                sizes.append(count)
            state, sums, losses = feed.train(state, sums, xs)
            if (done + count) // config.train.log_every > done // config.train.log_every:
                float(np.asarray(losses).reshape(-1)[-1])  # train.train's host sync
            done += count
        jax.block_until_ready((state, sums))
        return time.perf_counter() - start

    def evaluate() -> float:  # every seed's validation, as `vectorized.train_seeds` runs them
        start = time.perf_counter()
        for one in ([dispatch.member(state, i) for i in range(n)] if n else [state]):
            feed.evaluate(one, parts["valid"], batch_size=batch, clip_mean=config.eval.clip_mean)
        return time.perf_counter() - start

    epoch = lambda e, keep=False: run(feed.seeds_epoch(
        [parts["train"]] * n, batch_size=batch, seeds=[seed + i for i in range(n)], epoch=e)
        if n else feed.epoch(parts["train"], batch_size=batch, seed=seed, epoch=e), keep)
    start, clock = time.perf_counter(), compile_cache.CLOCK.read()
    epoch(0, keep=True)
    evaluate()
    first, compiled = time.perf_counter() - start, compile_cache.CLOCK.read().since(clock)
    out = {"description": feed.description, "warnings": said, "steps": steps_per_epoch,
           "first_epoch_s": first, "compile_s": compiled.seconds,
           "cache_hits": compiled.cache_hits, "valid_batches": -(-len(parts["valid"]) // batch),
           # seconds of audio an epoch trains on: windows x frames x hop / sr (waveform: / sr)
           "audio_s": max(n, 1) * steps_per_epoch * batch * length * (
               1 if feature.is_waveform else feature.hop_length) / feature.sr,
           "input": "x".join(map(str, feature.example_shape(length))),
           "device": f"{jax.devices()[0].device_kind} x{jax.device_count()}"}
    if spec["timed"]:
        clock, timed = compile_cache.CLOCK.read(), range(1, spec["epochs"] + 1)
        out["epoch_s"] = float(np.mean([epoch(e) for e in timed]))
        out["step_s"] = float(np.mean([run((k, kept[k]) for k in sizes) for _ in timed]))
        out["eval_s"] = evaluate()
        if (late := compile_cache.CLOCK.read().since(clock).seconds) > 0.05:  # none expected
            said.append(f"{late:.2f} s of compiling in the timed epochs")
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in jax.local_devices()]
    out["peak_bytes"], out["peak_kind"] = ((max(peaks), "device") if all(peaks) else (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "RSS"))  # CPU: no stats
    return out
