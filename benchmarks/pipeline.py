"""The whole input path, stage by stage, against what training consumes: is training
input-bound? And what do the feature cache and prefetching (double buffering) buy?

    python benchmarks/pipeline.py [--clips_per_class=8] [--model=resnet18] [--steps=12]

Measured in one process, on GTZAN-like files (synthetic 30 s clips written as 16-bit
WAV, so decoding is real):
1. decode: `audio.load_audio` + `fix_length` (clips/s, one thread).
2. decode + mel features + write: building the feature cache (clips/s).
3. cache hit: opening the same cache again (the memory map; s).
4. batches from the cache: the seeded gather of 3 s segments (segments/s), then also
   placed on the devices (segments/s).
5. the train step at 128 x 129 (segments/s): what the input path has to keep up with,
   and the ratio input / consumption (> 1: not input-bound).
6. an epoch slice of training steps fed inline vs. prefetched 2 batches ahead: s and
   the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()  # launch.py's CPU option, before JAX starts (ResNet-18 1.6x)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from configs import base  # noqa: E402
import common  # noqa: E402
from jaxgenre import audio, parallel  # noqa: E402
from jaxgenre.data import cache, pipeline, prefetch, sources  # noqa: E402
from jaxgenre.features import FeatureSpec  # noqa: E402


def write_wavs(root: str, clips_per_class: int) -> sources.FolderSource:
    synthetic = sources.SyntheticSource(clips_per_class=clips_per_class, seconds=30.0, seed=0)
    for ref in synthetic.clips:
        folder = os.path.join(root, synthetic.class_names[ref.label])
        os.makedirs(folder, exist_ok=True)
        sf.write(os.path.join(folder, ref.clip_id.split("/")[-1] + ".wav"),
                 synthetic.load(ref), synthetic.sr, subtype="PCM_16")
    return sources.FolderSource(root, progress=False)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def train_steps(model_name: str, store, segs, mesh, *, steps: int, prefetch_size: int):
    """Seconds for `steps` training steps fed from the cache (after one warm-up epoch
    slice, so compilation is excluded), and segments per second."""
    state, step_fns = common.setup(model_name, store.features.shape[1:-1] + (segs.length,),
                                   mesh, adapt=common.feature_adapter(model_name))

    def run(epoch, count):
        nonlocal state
        batches = prefetch.prefetch_to_mesh(
            pipeline.iterate_batches(store, segs, batch_size=32, seed=0, epoch=epoch,
                                     train=True), mesh, size=prefetch_size)
        for i, batch in enumerate(batches):
            if i == count:
                batches.close()
                break
            state, m = step_fns.train(state, batch)
        jax.block_until_ready(m)

    run(0, 2)  # compile + warm up
    _, seconds = timed(lambda: run(1, steps))
    return seconds, steps * 32 / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips_per_class", type=int, default=8)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    features = FeatureSpec.from_config(dict(base.get_config().features, kind="mel"))
    mesh = parallel.data_mesh()
    print(f"input path, {10 * args.clips_per_class} clips of 30 s, mel features, "
          f"{jax.devices()[0].platform} x{jax.device_count()}, "
          f"{len(os.sched_getaffinity(0))} cores")
    with tempfile.TemporaryDirectory() as tmp:
        source = write_wavs(os.path.join(tmp, "wav"), args.clips_per_class)
        n = len(source.clips)
        _, t_decode = timed(lambda: [audio.fix_length(source.load(c), 30.0, sr=source.sr)
                                     for c in source.clips])
        print(f"1. decode (load_audio + fix_length)   {n / t_decode:10.1f} clips/s")
        store, t_build = timed(lambda: cache.build_features(
            source, features, os.path.join(tmp, "cache"), progress=False))
        print(f"2. decode + mel + write (cache miss)  {n / t_build:10.1f} clips/s")
        again, t_hit = timed(lambda: cache.build_features(
            source, features, os.path.join(tmp, "cache"), progress=False))
        assert again.hit
        print(f"3. cache hit (open the memory map)    {t_hit * 1e3:10.1f} ms  "
              f"({t_build / t_hit:.0f}x faster than building)")
        segs = pipeline.segments(np.arange(n), store.features.shape[-1], segment_frames=129)
        host = lambda: list(pipeline.iterate_batches(store, segs, batch_size=32, seed=0,
                                                     epoch=0, train=True))
        batches, t_gather = timed(host)
        rows = 32 * len(batches)
        print(f"4. batches from the cache (gather)    {rows / t_gather:10.1f} segments/s")
        _, t_place = timed(lambda: jax.block_until_ready(
            [pipeline.shard_batch(b, mesh) for b in host()]))
        input_rate = rows / t_place
        print(f"   ... and placed on the devices      {input_rate:10.1f} segments/s")
        t_inline, consume = train_steps(args.model, store, segs, mesh, steps=args.steps,
                                        prefetch_size=0)
        print(f"5. {args.model} train step, 128x129  {consume:10.1f} segments/s  "
              f"(input path / consumption = {input_rate / consume:.0f}x: "
              f"{'not ' if input_rate > consume else ''}input-bound)")
        t_prefetched, _ = train_steps(args.model, store, segs, mesh, steps=args.steps,
                                      prefetch_size=2)
        print(f"6. {args.steps} steps fed inline {t_inline:.2f} s, prefetched 2 ahead "
              f"{t_prefetched:.2f} s: ratio inline / prefetched {t_inline / t_prefetched:.3f}")


if __name__ == "__main__":
    main()
