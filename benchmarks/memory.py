"""Peak memory of the data path and training at GTZAN size (and beyond): the feature
cache is a memory map, so the data set never has to fit in RAM.

    python benchmarks/memory.py [--clips_per_class=100] [--seconds=30] [--model=resnet18]
                                [--steps=20] [--cache_dtype=float32|float16] [--cache_dir=DIR]

Builds the mel feature cache of `10 * clips_per_class` synthetic clips of `seconds`
(100 per class of 30 s is GTZAN's size; 10000 per class of 1 s is FMA-large's clip
count, 100k), reads one whole epoch of 3 s segment batches from
it, then runs `steps` training steps. A thread samples /proc/self/status every 50 ms
and the script prints, per phase, the peak of the process's anonymous memory (RssAnon:
what the process itself allocated) and of its whole resident set (VmRSS, which also
counts file pages of the memory map the kernel may drop at any time), beside the cache's
size on disk. On a CPU, device memory is this same host memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()  # launch.py's CPU option, before JAX starts (ResNet-18 1.6x)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import base  # noqa: E402
import common  # noqa: E402
from jaxgenre import parallel  # noqa: E402
from jaxgenre.data import cache, pipeline, prefetch, sources  # noqa: E402
from jaxgenre.features import FeatureSpec  # noqa: E402


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Peak RssAnon and VmRSS (MB) between `reset()` calls, sampled in a thread."""

    def __init__(self, every: float = 0.05):
        self.every, self.anon, self.rss = every, 0, 0
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _sample(self):
        self.anon = max(self.anon, _status_kb("RssAnon"))
        self.rss = max(self.rss, _status_kb("VmRSS"))

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.every)

    def reset(self):
        self._sample()  # a phase shorter than one period still gets a reading
        peak = (self.anon / 1024, self.rss / 1024)
        self.anon = self.rss = 0
        return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips_per_class", type=int, default=100)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cache_dir", default=None, help="default: a temporary folder")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cache_dtype", default="float32", choices=cache.DTYPES)
    args = parser.parse_args()
    peak = PeakMemory()
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="jaxgenre-memory-")
    n = 10 * args.clips_per_class
    print(f"{n} synthetic clips of {args.seconds:g} s, mel ({args.cache_dtype} cache), "
          f"{args.model}; "
          f"{jax.devices()[0].platform} x{jax.device_count()}")
    print(f"{'phase':<34} {'seconds':>8} {'peak RssAnon MB':>16} {'peak VmRSS MB':>14}")

    def report(phase, start):
        anon, rss = peak.reset()
        print(f"{phase:<34} {time.perf_counter() - start:>8.1f} {anon:>16.0f} {rss:>14.0f}",
              flush=True)

    start = time.perf_counter()
    features = FeatureSpec.from_config(dict(base.get_config().features, kind="mel"))
    source = sources.SyntheticSource(clips_per_class=args.clips_per_class,
                                     seconds=args.seconds, seed=0)
    store = cache.build_features(source, features, cache_dir, progress=False,
                                 dtype=args.cache_dtype)
    size_mb = os.path.getsize(os.path.join(store.path, "features.npy")) / 2**20
    report(f"build the cache ({size_mb:.0f} MB on disk)", start)

    start = time.perf_counter()
    segs = pipeline.segments(np.arange(n), store.features.shape[-1], segment_frames=129)
    rows = 0
    for batch in pipeline.iterate_batches(store, segs, batch_size=32, seed=0, epoch=0,
                                          train=True):
        rows += batch["inputs"].shape[0]
    report(f"one epoch of batches ({rows} segments)", start)
    if args.steps == 0:  # the data path alone
        if args.cache_dir is None:
            shutil.rmtree(cache_dir)
        return

    start = time.perf_counter()
    mesh = parallel.data_mesh()
    state, steps = common.setup(args.model, features.example_shape(segs.length), mesh,
                                adapt=common.feature_adapter(args.model))
    batches = prefetch.prefetch_to_mesh(pipeline.iterate_batches(
        store, segs, batch_size=32, seed=0, epoch=1, train=True), mesh)
    for i, batch in enumerate(batches):
        state, m = steps.train(state, batch)
        if i + 1 == args.steps:
            batches.close()
            break
    jax.block_until_ready(m)
    report(f"{args.steps} train steps (batch 32)", start)
    if args.cache_dir is None:
        shutil.rmtree(cache_dir)


if __name__ == "__main__":
    main()
