"""Model facts, measured: parameter counts beside torchvision's, and the largest logit
difference between each Flax model and its torchvision twin (random weights, random
BatchNorm statistics, eval mode, float32 at full precision).

    python benchmarks/models.py
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()  # launch.py's CPU option, before JAX starts (ResNet-18 1.6x)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from jaxgenre import models  # noqa: E402
from jaxgenre.models import torchvision_port
from jaxgenre.testing import torch_reference  # noqa: E402

torchvision = torch_reference.import_torchvision()


def n_params(model, shape):
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros(shape))
    return sum(x.size for x in jax.tree.leaves(variables["params"]))


def main() -> None:
    torch.set_num_threads(2)
    print(f"{'model':<18} {'classes':>7} {'jaxgenre params':>16} {'torchvision':>12}")
    for name, ctor in (("spectral_cnn", None), ("resnet18", torchvision.models.resnet18),
                       ("efficientnet_v2_s", torchvision.models.efficientnet_v2_s)):
        for classes in (1000, 10):
            ours = n_params(models.create(name, classes),
                            (1, 128, 129, 1) if ctor is None else (1, 224, 224, 3))
            theirs = sum(p.numel() for p in ctor(num_classes=classes).parameters()) if ctor else "-"
            print(f"{name:<18} {classes:>7} {ours:>16,} {theirs:>12,}" if ctor else
                  f"{name:<18} {classes:>7} {ours:>16,} {theirs:>12}")
    print("\nlogit parity vs torchvision (batch 2, random weights and BN statistics):")
    for name, ctor in (("resnet18", torchvision.models.resnet18),
                       ("efficientnet_v2_s", torchvision.models.efficientnet_v2_s)):
        torch.manual_seed(0)
        reference = ctor().eval()
        with torch.no_grad():
            for m in reference.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
        variables = torchvision_port.convert(reference.state_dict(), name)
        model = models.create(name, 1000)
        for shape in ((2, 224, 224, 3), (2, 128, 1292, 3)):
            x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            with torch.no_grad():
                expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
            with jax.default_matmul_precision("highest"):
                got = np.asarray(jax.jit(model.apply)(variables, x))
            print(f"  {name:<18} input {shape[1]}x{shape[2]}: max |Δlogit| "
                  f"{np.abs(got - expected).max():.2e} (logits up to {np.abs(expected).max():.2f})")


if __name__ == "__main__":
    main()
