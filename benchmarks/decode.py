"""Decode and feature-cache rates per clip for the formats real data sets ship in: FMA's
mp3 and GTZAN's .au (and wav), 30 s clips written here with soundfile.

    python benchmarks/decode.py [--clips=40] [--seconds=30]

For each format: `audio.load_audio` clip by clip at 22050 Hz (decode + resample, as
the sources' validation and the cache build do), then the whole mel feature cache of
those files through a folder source (validation decode + cache decode + features).
Prints clips per second for both.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from configs import base  # noqa: E402
from jaxgenre import audio  # noqa: E402
from jaxgenre.data import cache, folder  # noqa: E402
from jaxgenre.features import FeatureSpec  # noqa: E402

FORMATS = (("mp3", "MP3", None, 44100), ("au", "AU", "PCM_16", 22050),
           ("wav", "WAV", "PCM_16", 22050))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{args.clips} clips of {args.seconds:g} s per format, "
          f"{len(os.sched_getaffinity(0))} cores; decoded to 22050 Hz mono")
    print(f"{'format':<8} {'file rate':>9} {'decode clips/s':>15} {'cache clips/s':>14}")
    for ext, fmt, subtype, rate in FORMATS:
        root = tempfile.mkdtemp(prefix="jaxgenre-decode-")
        try:
            for c in range(args.clips):
                os.makedirs(os.path.join(root, f"class{c % 2}"), exist_ok=True)
                t = np.arange(int(args.seconds * rate)) / rate
                y = (0.2 * np.sin(2 * np.pi * (200 + 10 * c) * t)
                     + 0.05 * rng.standard_normal(t.size))
                sf.write(os.path.join(root, f"class{c % 2}", f"clip{c:03d}.{ext}"),
                         y.astype(np.float32), rate, format=fmt, subtype=subtype)
            paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
            start = time.perf_counter()
            for path in paths:
                audio.load_audio(path, sr=22050)
            decode = len(paths) / (time.perf_counter() - start)
            start = time.perf_counter()
            source = folder.FolderSource(root, min_seconds=1.0, clip_seconds=args.seconds,
                                         progress=False)
            cache.build_features(source, FeatureSpec.from_config(base.get_config().features),
                                 os.path.join(root, "cache"), progress=False)
            built = len(source.clips) / (time.perf_counter() - start)
            print(f"{ext:<8} {rate:>9} {decode:>15.1f} {built:>14.1f}", flush=True)
        finally:
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
