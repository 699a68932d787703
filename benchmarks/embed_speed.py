"""Files per second: `jaxgenre.embed --model=musicnn_msd` against musicnn's own
extractor (`musicnn.extractor.extractor(file, model='MSD_musicnn')`, run under
TensorFlow's legacy Keras in a subprocess), on the same files.

    python benchmarks/embed_speed.py [--files=20] [--seconds=30] [--folder=DIR]

Without --folder it renders `--files` test signals of `--seconds` at 22050 Hz. Both
sides decode, resample to 16 kHz, compute the log-mel and run the network on 3 s
windows back to back; musicnn's extractor also builds and restores its graph for every
file, as its API does. jaxgenre's figure counts its first (compiling) file apart.
Ends with `jaxgenre X files/s, musicnn Y files/s, ratio R`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from jaxgenre import embed  # noqa: E402
from jaxgenre.testing import signals  # noqa: E402

# musicnn's extractor, file by file, in a process of its own (TF_USE_LEGACY_KERAS must be
# set before TensorFlow is imported). Prints the seconds it took for all files.
MUSICNN_SIDE = """
import sys, time
from musicnn.extractor import extractor
files = sys.argv[1:]
start = time.perf_counter()
for f in files:
    extractor(f, model='MSD_musicnn', extract_features=False)
print('SECONDS', time.perf_counter() - start)
"""


def render(folder: str, n: int, seconds: float) -> list:
    out, sr = [], 22050
    for i in range(n):
        length = int(seconds * sr)
        y = (signals.linear_chirp(sr=sr, n=length, f0=50.0 + 10 * i)
             + 0.3 * signals.white_noise(n=length, seed=i)).astype(np.float32)
        path = os.path.join(folder, f"clip{i:03d}.wav")
        sf.write(path, y, sr)
        out.append(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.folder:
            from jaxgenre.predict import expand
            files = expand([args.folder])[:args.files]
        else:
            files = render(tmp, args.files, args.seconds)
        embedder = embed.PRETRAINED["musicnn_msd"]()
        start = time.perf_counter()
        embed.run(embedder, files[:1], os.path.join(tmp, "warm.npz"), max_seconds=600)
        first = time.perf_counter() - start
        start = time.perf_counter()
        embed.run(embedder, files, os.path.join(tmp, "all.npz"), max_seconds=600)
        ours = time.perf_counter() - start
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        done = subprocess.run([sys.executable, "-c", MUSICNN_SIDE, *files], env=env,
                              capture_output=True, text=True)
        lines = [l for l in done.stdout.splitlines() if l.startswith("SECONDS")]
        if done.returncode != 0 or not lines:
            sys.exit(f"musicnn's extractor failed: {done.stderr[-2000:]}")
        theirs = float(lines[-1].split()[1])
    n = len(files)
    print(f"{n} files; jaxgenre's first file (compiling) {first:.1f} s")
    print(f"jaxgenre {n / ours:.2f} files/s ({ours:.1f} s), musicnn {n / theirs:.2f} files/s "
          f"({theirs:.1f} s), ratio {theirs / ours:.2f}")


if __name__ == "__main__":
    main()
