"""How often torch's first Hann window in a process is wrong: the finding behind
`tests/test_other_frameworks.py` asking torch for a float64 STFT (BUILD_NOTES, "torch's
first Hann window").

    python benchmarks/torch_hann_window.py [--processes=20]

Each of `--processes` fresh child processes calls `torch.hann_window(2048,
periodic=True)` three times and reports each call's largest difference from the float64
formula 0.5 - 0.5 cos(2 pi n / 2048). Printed per dtype and intra-op thread count: how
many processes had a first call, or a later call, off by more than 100 times the dtype's
rounding, and the largest differences seen.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CALLS = 3


def child(dtype_name: str, threads: int) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    exact = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(2048) / 2048)
    dtype = getattr(torch, dtype_name)
    errors = [float(np.abs(torch.hann_window(2048, periodic=True, dtype=dtype).numpy()
                           - exact).max()) for _ in range(CALLS)]
    print(json.dumps(errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=20)
    args = parser.parse_args()
    if args.processes < 1:
        parser.error(f"--processes must be at least 1, got {args.processes}")
    import torch
    print(f"torch {torch.__version__}, {args.processes} processes per row, "
          f"{CALLS} calls each")
    print(f"{'dtype':8} {'threads':>7} {'first call off':>15} {'later call off':>15} "
          f"{'max first':>10} {'max later':>10}")
    for dtype_name, rounding in (("float32", 2 ** -24), ("float64", 2 ** -53)):
        for threads in (2, 1):
            runs = [json.loads(subprocess.run(
                [sys.executable, __file__, "--child", dtype_name, str(threads)],
                check=True, capture_output=True, text=True).stdout)
                for _ in range(args.processes)]
            bad = lambda e: e > 100 * rounding
            first = sum(bad(r[0]) for r in runs)
            later = sum(any(bad(e) for e in r[1:]) for r in runs)
            print(f"{dtype_name:8} {threads:7d} {first:>9d} / {len(runs):<3d} "
                  f"{later:>9d} / {len(runs):<3d} {max(r[0] for r in runs):10.1e} "
                  f"{max(max(r[1:]) for r in runs):10.1e}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
