"""What jaxgenre's CPU XLA option (`jaxgenre/xla_cpu.py`: 2-D convolutions kept out of
YNNPACK) changes, measured in one command: the same timings in two child processes,
one with the option (the default) and one with `JAXGENRE_KEEP_XLA_FLAGS=1` (XLA's
default: YNNPACK convolutions).

    python benchmarks/xla_cpu_flags.py [--steps=3]

Times one ResNet-18 3x3 convolution (64 -> 64 channels on 32 x 32 x 33, batch 32: a
layer1 convolution at the default 128 x 129 input) forward and with its input and
kernel gradients, and ResNet-18's train step (batch 32, 128 x 129); prints both
settings and jaxgenre's speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child(steps: int) -> dict:
    from jaxgenre import xla_cpu

    xla_cpu.apply_cpu_flags()  # first, before JAX starts (JAXGENRE_KEEP_XLA_FLAGS: skipped)
    import jax
    import jax.numpy as jnp

    import common
    from jaxgenre import parallel

    x = jax.random.normal(jax.random.PRNGKey(0), (32, 32, 33, 64))
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 64, 64)) * 0.05
    conv = lambda x, w: common.conv_nhwc(x, w, padding=1)
    loss = lambda x, w: jnp.sum(jnp.square(conv(x, w)))
    out = {name: common.measure(fn, x, w, repeats=5)[0] for name, fn in (
        ("conv forward", conv), ("conv grad input", jax.grad(loss, 0)),
        ("conv grad kernel", jax.grad(loss, 1)), ("conv both grads", jax.grad(loss, (0, 1))))}
    mesh = parallel.data_mesh()
    state, steps_fn = common.setup("resnet18", (128, 129, 3), mesh)
    data = common.random_batch(32, (128, 129, 3), mesh)
    out["resnet18 train step img/s"] = common.images_per_second(
        lambda st: steps_fn.train(st, data), state, 32, steps)
    out["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.steps)))
        return
    runs = {}
    for label, extra in (("jaxgenre (no YNNPACK conv)", {}),
                         ("XLA default (YNNPACK conv)", {"JAXGENRE_KEEP_XLA_FLAGS": "1"})):
        env = {k: v for k, v in os.environ.items()
               if k not in ("XLA_FLAGS", "JAXGENRE_KEEP_XLA_FLAGS")}
        env.update(extra)
        done = subprocess.run([sys.executable, __file__, "--child", f"--steps={args.steps}"],
                              env=env, capture_output=True, text=True, check=True)
        runs[label] = json.loads(done.stdout.strip().splitlines()[-1])
    ours, default = runs.values()
    print(f"{len(os.sched_getaffinity(0))} cores; XLA_FLAGS in each child: "
          + " | ".join(repr(r["XLA_FLAGS"]) for r in runs.values()))
    print(f"{'':<28}" + "".join(f"{label:>29}" for label in runs) + f"{'speed-up':>10}")
    for key in ours:
        if key == "XLA_FLAGS":
            continue
        unit = "" if "img/s" in key else " ms"
        # Speed-up of jaxgenre's setting: time ratio default / ours, or rate ours / default.
        ratio = ours[key] / default[key] if "img/s" in key else default[key] / ours[key]
        print(f"{key:<28}" + "".join(f"{r[key]:>26.1f}{unit:<3}" for r in runs.values())
              + f"{ratio:>9.2f}x")


if __name__ == "__main__":
    main()
