"""One depthwise 3x3 convolution: XLA's grouped convolution (`nn.Conv` with
`feature_group_count = channels`) against jaxgenre's CPU `cpu_ops.DepthwiseConv`
(shifted multiply-adds), forward and gradients, with XLA's FLOP counts.

    python benchmarks/depthwise.py [--shape=32x64x64x96] [--repeats=3]

Prints milliseconds per call (jit, warmed up, mean of `repeats`) for the forward pass,
the input gradient, the kernel gradient and both gradients of a loss, and XLA's cost
analysis of each; then the ratios. Both layers share one set of weights.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()  # launch.py's CPU option, before JAX starts (ResNet-18 1.6x)

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import common  # noqa: E402
from jaxgenre.models import cpu_ops, layers  # noqa: E402


def grouped(channels: int) -> nn.Module:
    return nn.Conv(channels, (3, 3), padding=((1, 1), (1, 1)), feature_group_count=channels,
                   use_bias=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="32x64x64x96", help="N x H x W x C")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    modules = {"grouped lax conv": grouped(shape[-1]),
               "DepthwiseConv": cpu_ops.DepthwiseConv(3, padding=1)}
    variables = modules["grouped lax conv"].init(jax.random.PRNGKey(1), x)
    print(f"depthwise 3x3, input {args.shape}, {jax.devices()[0].platform}, "
          f"{len(os.sched_getaffinity(0))} cores; ms per call (XLA GFLOP)")
    print(f"{'layer':<18} {'forward':>16} {'grad input':>16} {'grad kernel':>16} "
          f"{'grad both':>16}")
    totals = {}
    for name, module in modules.items():
        loss = lambda v, x: jnp.sum(jnp.square(module.apply(v, x)))
        cells = [common.measure(fn, variables, x, repeats=args.repeats)
                 for fn in (lambda v, x: module.apply(v, x), jax.grad(loss, 1),
                            jax.grad(loss, 0), jax.grad(loss, (0, 1)))]
        totals[name] = cells
        print(f"{name:<18} " + " ".join(f"{ms:>8.1f} ({gf:>5.2f})" for ms, gf in cells))
    (f_old, _), *_, (b_old, _) = totals["grouped lax conv"]
    (f_new, _), *_, (b_new, _) = totals["DepthwiseConv"]
    print(f"DepthwiseConv vs grouped conv: forward {f_old / f_new:.1f}x faster, "
          f"both gradients {b_old / b_new:.1f}x faster")


if __name__ == "__main__":
    main()
