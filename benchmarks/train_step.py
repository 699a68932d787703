"""Training-step throughput: jaxgenre (jit, warmed up) vs torchvision + torch eager, same
model, input, batch and dtype, on the same device; on CPU torch gets as many threads as
this process has cores (what XLA's CPU runtime uses).

    python benchmarks/train_step.py [--models=resnet18,efficientnet_v2_s]
        [--sizes=128x129[,128x1292]] [--batch=32] [--steps=3] [--dtype=float32|bfloat16]
        [--peak_tflops=989] [--forward_only] [--augment]

One step = forward + backward + Adam update, on random inputs with 10 classes. Sizes:
128x129 is the default model input (a 3 s mel segment), 128x1292 a whole 30 s clip
(the study's native mel image). Prints images per second for both, the ratio
jaxgenre / torch, and the step's FLOPs (XLA's cost analysis of the compiled step) as
achieved TFLOP/s, and the memory XLA's buffer assignment gives the compiled step
(arguments + outputs not aliased to arguments + temporaries); with --peak_tflops (the
device's peak for the dtype, e.g. 989 for an H100 SXM in bfloat16) also the model FLOPs
utilisation (MFU). A step the device cannot allocate is reported as out of memory,
with that figure.

--augment instead times, in one run, jaxgenre's train step on mel features
(batch, 128, frames) plain and with every on-device augmentation on (gain, SpecAugment,
mixup, label smoothing: `jaxgenre/training/augment.py`), and prints the ratio; random crops are
cut on the host and cost the step nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()  # launch.py's CPU option, before JAX starts (ResNet-18 1.6x)

import jax  # noqa: E402

import common  # noqa: E402
from jaxgenre import parallel  # noqa: E402


def jax_rate(name: str, shape, batch: int, steps: int, dtype: str, forward_only: bool):
    """(images per second, FLOPs per step, bytes XLA allocates for it) of jaxgenre's
    jitted train step, or of its jitted evaluation forward pass with `forward_only`.
    The rate is None when the device cannot allocate what the step needs."""
    mesh = parallel.data_mesh()
    state, steps_fn = common.setup(name, shape, mesh, dtype=dtype)
    data = common.random_batch(batch, shape, mesh)
    if forward_only:
        step = lambda st: (st, steps_fn.predict(st, data))
        compiled = steps_fn.predict.lower(state, data).compile()
    else:
        step = lambda st: steps_fn.train(st, data)
        compiled = steps_fn.train.lower(state, data).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float((cost or {}).get("flops", float("nan")))
    memory = compiled.memory_analysis()  # its peak_memory_in_bytes omits temporaries on CPU
    peak = float(memory.argument_size_in_bytes + memory.output_size_in_bytes
                 - memory.alias_size_in_bytes + memory.temp_size_in_bytes)
    try:
        return common.images_per_second(step, state, batch, steps), flops, peak
    except jax.errors.JaxRuntimeError as error:
        if "RESOURCE_EXHAUSTED" not in str(error):
            raise
        return None, flops, peak


def augment_ratio(name: str, shape, batch: int, steps: int, dtype: str):
    """(plain, augmented) images per second of the train step on (batch, *shape) features,
    the model's own adapter in both."""
    from jaxgenre.training import augment

    mesh = parallel.data_mesh()
    everything = augment.Augmentation(gain_db=6.0, freq_masks=2, time_masks=2,
                                      mixup_alpha=1.0, label_smoothing=0.1)
    rates = []
    for aug in (augment.Augmentation(), everything):
        state, steps_fn = common.setup(name, shape, mesh, dtype=dtype, augmentation=aug,
                                       adapt=common.feature_adapter(name))
        data = common.random_batch(batch, shape, mesh)
        rates.append(common.images_per_second(lambda st: steps_fn.train(st, data), state,
                                              batch, steps))
    return rates


def torch_rate(name: str, shape, batch: int, steps: int, dtype: str,
               forward_only: bool) -> float:
    """Images per second of torchvision's model in torch eager mode, on JAX's platform."""
    import torch

    from jaxgenre.testing import torch_reference
    torchvision = torch_reference.import_torchvision()

    on_gpu = jax.devices()[0].platform == "gpu" and torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    if not on_gpu:
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    net = getattr(torchvision.models, name)(num_classes=10).train().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    h, w, c = shape
    x = torch.randn(batch, c, h, w, device=device)
    y = torch.zeros(batch, dtype=torch.long, device=device)
    # Mixed precision like jaxgenre's dtype option: bfloat16 compute, float32 weights.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def train_step():
        opt.zero_grad()
        with autocast:
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    def forward():  # inference, like jaxgenre's eval step
        with torch.no_grad(), autocast:
            net(x)

    if forward_only:
        net.eval()
    step = forward if forward_only else train_step

    def sync():
        if on_gpu:
            torch.cuda.synchronize()

    step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="resnet18,efficientnet_v2_s")
    parser.add_argument("--sizes", default="128x129",
                        help="comma-separated H x W of the model input (128x1292: a whole "
                        "30 s clip; EfficientNetV2-S there at batch 32 needs ~33 GB)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--peak_tflops", type=float, default=None,
                        help="the device's peak TFLOP/s for --dtype: prints MFU")
    parser.add_argument("--no_torch", action="store_true", help="jaxgenre only")
    parser.add_argument("--forward_only", action="store_true",
                        help="time inference (the eval step) instead of training")
    parser.add_argument("--augment", action="store_true",
                        help="time the train step plain and with every augmentation on")
    args = parser.parse_args()
    if args.augment:
        print(f"train step on mel features, batch {args.batch}, {args.dtype}, "
              f"{jax.devices()[0].device_kind} x{jax.device_count()}; {args.steps} timed steps")
        print(f"{'model':<18} {'features':>9} {'plain img/s':>12} {'augmented img/s':>16} "
              f"{'augmented / plain':>18}")
        for size in args.sizes.split(","):
            h, w = (int(v) for v in size.split("x"))
            for name in args.models.split(","):
                plain, augmented = augment_ratio(name, (h, w), args.batch, args.steps,
                                                 args.dtype)
                print(f"{name:<18} {size:>9} {plain:>12.2f} {augmented:>16.2f} "
                      f"{augmented / plain:>17.3f}x", flush=True)
        return
    device = jax.devices()[0]
    what = "forward pass (inference)" if args.forward_only else "train step"
    print(f"{what}, batch {args.batch}, {args.dtype}, {device.platform} "
          f"({device.device_kind}) x{jax.device_count()}, {len(os.sched_getaffinity(0))} "
          f"cores; one timed run of {args.steps} steps after a warm-up step")
    print(f"{'model':<18} {'input':>9} {'jaxgenre img/s':>15} {'torch img/s':>12} "
          f"{'ratio':>7} {'GFLOP/step':>11} {'TFLOP/s':>8} {'XLA GB':>7}"
          + (" MFU" if args.peak_tflops else ""))
    for size in args.sizes.split(","):
        h, w = (int(v) for v in size.split("x"))
        for name in args.models.split(","):
            ours, flops, peak = jax_rate(name, (h, w, 3), args.batch, args.steps, args.dtype,
                                         args.forward_only)
            if ours is None:
                print(f"{name:<18} {size:>9} {'out of memory':>15} {'-':>12} {'-':>7} "
                      f"{flops / 1e9:>11.1f} {'-':>8} {peak / 1e9:>7.1f}", flush=True)
                continue
            theirs = (float("nan") if args.no_torch
                      else torch_rate(name, (h, w, 3), args.batch, args.steps, args.dtype,
                                      args.forward_only))
            achieved = flops * ours / args.batch / 1e12
            mfu = f" {achieved / args.peak_tflops:.1%}" if args.peak_tflops else ""
            print(f"{name:<18} {size:>9} {ours:>15.2f} {theirs:>12.2f} {ours / theirs:>6.2f}x "
                  f"{flops / 1e9:>11.1f} {achieved:>8.3f} {peak / 1e9:>7.1f}{mfu}", flush=True)


if __name__ == "__main__":
    main()
