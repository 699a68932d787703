"""How long a checkpoint save holds up training: orbax's asynchronous save (jaxgenre's
default: the write runs in a background thread) against a synchronous one.

    python benchmarks/checkpoint.py [--model=resnet18] [--saves=3] [--gap=2]

Saves a train state of the model (parameters, BatchNorm statistics and Adam's moments)
through `jaxgenre.checkpoint.Checkpoints` `saves` times, `gap` seconds apart, and prints the mean time the
`save` call blocks, for both settings, and the ratio; then the time until the async
writes have finished.
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

import common  # noqa: E402
from jaxgenre import checkpoint, parallel  # noqa: E402


def blocking_seconds(state, workdir: str, saves: int, use_async: bool, gap: float):
    ckpt = checkpoint.Checkpoints(workdir, keep=saves, use_async=use_async)
    times = []
    for i in range(saves):
        time.sleep(gap)  # training between two saves (an epoch), not counted
        state = state.replace(step=state.step + 1)
        start = time.perf_counter()
        ckpt.save(state, {"epoch": i + 1, "best_valid_accuracy": 0.0})
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    ckpt.close()  # waits for pending writes
    return sum(times) / len(times), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--saves", type=int, default=3)
    parser.add_argument("--gap", type=float, default=2.0,
                        help="seconds of (simulated) training between saves")
    args = parser.parse_args()
    state, _ = common.setup(args.model, (128, 129, 3), parallel.data_mesh())
    megabytes = sum(x.nbytes for x in jax.tree.leaves(state)) / 2**20
    print(f"{args.model} train state, {megabytes:.0f} MB, {args.saves} saves")
    with tempfile.TemporaryDirectory() as tmp:
        sync, _ = blocking_seconds(state, os.path.join(tmp, "sync"), args.saves, False,
                                   args.gap)
        asyn, drain = blocking_seconds(state, os.path.join(tmp, "async"), args.saves, True,
                                       args.gap)
    print(f"save blocks training: synchronous {sync * 1e3:.0f} ms, asynchronous "
          f"{asyn * 1e3:.0f} ms (ratio {sync / asyn:.1f}x); pending async writes finished "
          f"{drain * 1e3:.0f} ms after the last save")


if __name__ == "__main__":
    main()
