"""ResNet-18's stem max pool (3x3, stride 2, padding 1): flax's `nn.max_pool`, whose
gradient XLA derives (select-and-scatter), against jaxgenre's `layers.max_pool`, whose
gradient is written out as masked, shifted copies (first maximum wins, as in torch).

    python benchmarks/max_pool.py [--shape=32x64x65x64] [--repeats=5]

The default shape is the stem's output for a batch of 32 default 128 x 129 inputs.
Prints ms per call (jit, warmed up) of the forward pass and of the input gradient,
and the ratios; the two gradients are checked to be equal first.
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
import numpy as np  # noqa: E402

import common  # noqa: E402
from jaxgenre.models import layers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="32x64x65x64", help="N x H x W x C")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split("x"))
    x = jax.nn.relu(jax.random.normal(jax.random.PRNGKey(0), shape))  # ties at 0, as in a net
    pools = {"nn.max_pool": lambda x: nn.max_pool(x, (3, 3), strides=(2, 2),
                                                  padding=((1, 1), (1, 1))),
             "layers.max_pool": lambda x: layers.max_pool(x, 3, stride=2, padding=1,
                                                           cpu_ops=True)}
    grads = {name: jax.grad(lambda x, pool=pool: jnp.sum(jnp.sin(pool(x))))
             for name, pool in pools.items()}
    np.testing.assert_allclose(*(np.asarray(jax.jit(g)(x)) for g in grads.values()),
                               atol=1e-5)
    print(f"max pool 3x3 stride 2, input {args.shape}, {jax.devices()[0].platform}, "
          f"{len(os.sched_getaffinity(0))} cores; ms per call")
    print(f"{'pool':<16} {'forward':>9} {'gradient':>9}")
    rows = {}
    for name in pools:
        rows[name] = (common.measure(pools[name], x, repeats=args.repeats)[0],
                      common.measure(grads[name], x, repeats=args.repeats)[0])
        print(f"{name:<16} {rows[name][0]:>9.1f} {rows[name][1]:>9.1f}")
    (f_old, g_old), (f_new, g_new) = rows["nn.max_pool"], rows["layers.max_pool"]
    print(f"layers.max_pool vs nn.max_pool: forward {f_old / f_new:.2f}x, "
          f"gradient {g_old / g_new:.2f}x faster")


if __name__ == "__main__":
    main()
