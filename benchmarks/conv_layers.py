"""ResNet-18's convolutions one by one, jaxgenre (XLA) against torch: where the train
step's time goes and how much of the gap to torch is convolution kernels.

    python benchmarks/conv_layers.py [--height=128] [--width=129] [--batch=32]

For each distinct convolution of ResNet-18 at the given input (stem 7x7, the 3x3 and
1x1 layers of each stage), times the forward pass plus both gradients (input and
kernel) of a squared-sum loss, in jit (XLA, with jaxgenre's CPU option) and in torch
eager on the same data, and sums them weighted by how often the layer occurs. The stem
is timed without its input gradient, as in training. torch gets as many threads as this
process has cores.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()  # launch.py's CPU option, before JAX starts (ResNet-18 1.6x)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: E402


def layers(height: int, width: int):
    """(input H, input W, in channels, out channels, kernel, stride, count)."""
    h, w = -(-height // 2), -(-width // 2)  # stem conv, stride 2
    rows = [(height, width, 3, 64, 7, 2, 1)]
    h, w = -(-h // 2), -(-w // 2)  # max pool, stride 2
    c = 64
    for stage, width_out in enumerate((64, 128, 256, 512)):
        if stage == 0:
            rows.append((h, w, c, width_out, 3, 1, 4))
        else:
            rows += [(h, w, c, width_out, 3, 2, 1), (h, w, c, width_out, 1, 2, 1)]
            h, w = -(-h // 2), -(-w // 2)
            rows.append((h, w, width_out, width_out, 3, 1, 3))
        c = width_out
    return rows


def torch_ms(x, w, stride, pad, input_grad: bool, repeats: int) -> float:
    import torch

    xt = torch.tensor(np.asarray(x).transpose(0, 3, 1, 2).copy(), requires_grad=input_grad)
    wt = torch.tensor(np.asarray(w).transpose(3, 2, 0, 1).copy(), requires_grad=True)

    def step():
        y = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad)
        torch.square(y).sum().backward()

    return common.ms_per_call(step, repeats)  # torch on the CPU: done on return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=129)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    print(f"ResNet-18 convolutions at {args.height}x{args.width}, batch {args.batch}, "
          f"{jax.devices()[0].platform}, {len(os.sched_getaffinity(0))} cores; ms per "
          "forward + gradients")
    print(f"{'layer':<30} {'count':>5} {'jaxgenre':>9} {'torch':>9} {'ratio':>7}")
    rng = np.random.default_rng(0)
    totals = [0.0, 0.0]
    for h, w, c_in, c_out, k, stride, count in layers(args.height, args.width):
        pad = (k - 1) // 2
        x = jnp.asarray(rng.standard_normal((args.batch, h, w, c_in)), jnp.float32)
        kernel = jnp.asarray(rng.standard_normal((k, k, c_in, c_out)) * 0.05, jnp.float32)
        conv = lambda x, kernel, s=stride, p=pad: common.conv_nhwc(x, kernel, stride=s,
                                                                   padding=p)
        loss = lambda x, kernel, conv=conv: jnp.sum(jnp.square(conv(x, kernel)))
        stem = c_in == 3
        grad = jax.grad(loss, 1 if stem else (0, 1))
        ours = common.measure(grad, x, kernel, repeats=args.repeats)[0]
        theirs = torch_ms(x, kernel, stride, pad, not stem, args.repeats)
        totals[0] += ours * count
        totals[1] += theirs * count
        name = f"{h}x{w} {c_in}->{c_out} {k}x{k}/{stride}"
        print(f"{name:<30} {count:>5} {ours:>9.1f} {theirs:>9.1f} {theirs / ours:>6.2f}x")
    print(f"{'all convolutions of one step':<30} {'':>5} {totals[0]:>9.1f} {totals[1]:>9.1f} "
          f"{totals[1] / totals[0]:>6.2f}x")


if __name__ == "__main__":
    main()
