"""What checking a feature cache entry costs: builds one entry of the built-in synthetic
set (mel, 30 s clips: GTZAN's shape), then times the check done each time an entry is
opened (`cache.check_entry`, 32 sampled clips), the full check of every clip, the
CRC-32 of every clip done once when the entry is written, and the feature computation
that writes it — all in one run, so the ratios hold on any machine.

    python benchmarks/cache_check.py [--clips_per_class=20] [--repeats=5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()


from configs import base  # noqa: E402
from jaxgenre.data import cache, sources  # noqa: E402
from jaxgenre.features import FeatureSpec  # noqa: E402


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips_per_class", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    config = base.get_config()
    config.data.synthetic.clips_per_class = args.clips_per_class
    source = sources.open_source("synthetic", clips_per_class=args.clips_per_class,
                                 synthetic_seconds=30.0, clip_seconds=30.0, progress=False)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        store = cache.build_features(source, FeatureSpec.from_config(config.features), folder, progress=False)
        build = time.perf_counter() - start
        n, size = len(store), store.features.nbytes
        sampled = best_of(lambda: cache.check_entry(store.path), args.repeats)
        full = best_of(lambda: cache.check_entry(store.path, sample=None), args.repeats)
        crc = best_of(lambda: [cache._clip_crc(store.features, i) for i in range(n)],
                      args.repeats)
    print(f"entry: {n} clips, {size / 1e6:.1f} MB ({store.features.shape[1:]} float32 each)")
    print(f"computing the entry (decode + features + write): {build:.2f} s")
    print(f"check on open (32 sampled clips + the last): {sampled * 1e3:.1f} ms "
          f"({sampled / build:.2%} of computing it)")
    print(f"full check (every clip): {full * 1e3:.1f} ms ({full / build:.2%})")
    print(f"CRC-32 of every clip when writing: {crc * 1e3:.1f} ms ({crc / build:.2%})")
    per_clip = (full - sampled) / max(n - 33, 1)
    print(f"extrapolated to 100,000 clips: open {sampled * 1e3:.0f} ms + metadata, "
          f"full check {per_clip * 1e5:.0f} s")


if __name__ == "__main__":
    main()
