"""Data-parallel train-step throughput over 1, 2, 4, 8 devices, same global batch.

    python benchmarks/scaling.py [--model=resnet18] [--size=128x129] [--batch=32]
                                 [--steps=5] [--devices=1,2,4,8]

On a CPU the script asks XLA for 8 host devices (XLA_FLAGS, set before JAX starts).
Those "devices" share the same cores, so the table shows the cost of splitting a step
(per-device overhead, gradient all-reduce), not a speed-up; on a machine with several
real accelerators the same table shows scaling. Each row: images/s for the global batch
and the ratio to one device.
"""

from __future__ import annotations

import argparse
import os
import sys

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               " --xla_force_host_platform_device_count=8").strip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()  # launch.py's CPU option, before JAX starts (ResNet-18 1.6x)

import jax  # noqa: E402

import common  # noqa: E402
from jaxgenre import models, parallel  # noqa: E402


def rate(name: str, shape, batch: int, steps: int, n_devices: int) -> float:
    mesh = parallel.data_mesh(jax.devices()[:n_devices])
    state, step_fns = common.setup(name, shape, mesh)
    data = common.random_batch(batch, shape, mesh)
    return common.images_per_second(lambda st: step_fns.train(st, data), state, batch, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", default="128x129")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--devices", default="1,2,4,8")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    channels = models.get_spec(args.model).channels
    counts = [int(n) for n in args.devices.split(",") if int(n) <= jax.device_count()]
    device = jax.devices()[0]
    print(f"{args.model}, global batch {args.batch}, input {h}x{w}x{channels}, "
          f"{device.platform} ({device.device_kind}), {jax.device_count()} devices on "
          f"{len(os.sched_getaffinity(0))} cores; {args.steps} timed steps after a warm-up")
    print(f"{'devices':>7} {'img/s':>9} {'vs 1 device':>12}")
    base = None
    for n in counts:
        r = rate(args.model, (h, w, channels), args.batch, args.steps, n)
        base = base or r
        print(f"{n:>7} {r:>9.2f} {r / base:>11.2f}x", flush=True)


if __name__ == "__main__":
    main()
