"""Training-step throughput: jaxgenre (jit, warmed up) vs torchvision + torch eager, same
model, input, batch and dtype, torch limited to as many threads as this process has cores.

    python benchmarks/train_step.py [--models=resnet18,efficientnet_v2_s] [--size=128x129]
                                    [--batch=32] [--steps=3]

One step = forward + backward + Adam update, on random inputs with 10 classes. Prints
images (segments) per second for both and the ratio jaxgenre / torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from ml_collections import config_dict  # noqa: E402

from jaxgenre import models, parallel, train  # noqa: E402


def jax_rate(name: str, shape, batch: int, steps: int) -> float:
    model = models.create(name, 10)
    optim = config_dict.ConfigDict({"name": "adam", "learning_rate": 1e-3, "weight_decay": 0.0,
                                    "schedule": "constant"})
    tx = train.create_optimizer(optim, 100)
    mesh = parallel.data_mesh()
    state = train.create_train_state(jax.random.PRNGKey(0), model, tx, jnp.zeros((1, *shape)))
    state = jax.device_put(state, parallel.replicated(mesh))
    steps_fn = train.compile_steps(model, tx, lambda x: x, mesh)
    data = {"inputs": np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32),
            "labels": np.zeros(batch, np.int32), "mask": np.ones(batch, np.float32)}
    data = jax.device_put(data, parallel.batch_sharding(mesh))
    state, m = steps_fn.train(state, data)
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(steps):
        state, m = steps_fn.train(state, data)
    jax.block_until_ready(m)
    return batch * steps / (time.perf_counter() - start)


def torch_rate(name: str, shape, batch: int, steps: int) -> float:
    import torch

    from jaxgenre.models import torch_reference
    torchvision = torch_reference.import_torchvision()

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    net = getattr(torchvision.models, name)(num_classes=10).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    h, w, c = shape
    x = torch.randn(batch, c, h, w)
    y = torch.zeros(batch, dtype=torch.long)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="resnet18,efficientnet_v2_s")
    parser.add_argument("--size", default="128x129", help="H x W of the model input")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    print(f"train step, batch {args.batch}, input {h}x{w}x3, float32, "
          f"{jax.devices()[0].device_kind} x{jax.device_count()}, one timed run of "
          f"{args.steps} steps after a warm-up step")
    print(f"{'model':<18} {'jaxgenre img/s':>15} {'torch img/s':>12} {'ratio':>7}")
    for name in args.models.split(","):
        ours = jax_rate(name, (h, w, 3), args.batch, args.steps)
        theirs = torch_rate(name, (h, w, 3), args.batch, args.steps)
        print(f"{name:<18} {ours:>15.1f} {theirs:>12.1f} {ours / theirs:>6.2f}x", flush=True)


if __name__ == "__main__":
    main()
