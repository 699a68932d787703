"""ResNet-18, layer for layer as torchvision's `resnet18` (BasicBlock, [2, 2, 2, 2]).

Same padding, strides and BatchNorm (eps 1e-5, torch momentum 0.1); parameter names
are torchvision's module paths with '.' → '_' (`layer2_0_downsample_0`). Input NHWC.
Each stage's output is sown into the 'intermediates' collection (`stem`, `layer1` ..
`layer4`) so parity tests can locate a mismatch, not just detect it.
"""

from __future__ import annotations

from typing import Any, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp

from jaxgenre.models.layers import batch_norm, conv, dense, max_pool
from jaxgenre.models.spec import IMAGE_FEATURES, ImageNetCheckpoint, ModelSpec

_EPS = 1e-5


class ResNet18(nn.Module):
    num_classes: int = 1000
    stage_sizes: Sequence[int] = (2, 2, 2, 2)
    widths: Sequence[int] = (64, 128, 256, 512)
    dtype: Any = jnp.float32
    cpu_ops: bool = False  # the stem's max-pool gradient written out (layers.max_pool)

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        chex.assert_rank(x, 4)
        x = x.astype(self.dtype)
        bn = lambda y, name: batch_norm(y, name, train=train, eps=_EPS, dtype=self.dtype)
        x = conv(x, "conv1", 64, 7, stride=2, dtype=self.dtype)
        x = nn.relu(bn(x, "bn1"))
        x = max_pool(x, 3, stride=2, padding=1, cpu_ops=self.cpu_ops)
        self.sow("intermediates", "stem", x)
        for stage, (blocks, width) in enumerate(zip(self.stage_sizes, self.widths), start=1):
            for block in range(blocks):
                stride = 2 if stage > 1 and block == 0 else 1
                p = f"layer{stage}_{block}_"
                residual = x
                y = nn.relu(bn(conv(x, p + "conv1", width, 3, stride=stride, dtype=self.dtype),
                               p + "bn1"))
                y = bn(conv(y, p + "conv2", width, 3, dtype=self.dtype), p + "bn2")
                if stride != 1 or residual.shape[-1] != width:
                    residual = bn(conv(x, p + "downsample_0", width, 1, stride=stride,
                                       dtype=self.dtype), p + "downsample_1")
                x = nn.relu(y + residual)
            self.sow("intermediates", f"layer{stage}", x)
        x = jnp.mean(x, axis=(1, 2))
        self.sow("intermediates", "embedding", x)  # what `jaxgenre.embed` returns
        return dense(x, "fc", self.num_classes, dtype=self.dtype).astype(jnp.float32)


SPEC = ModelSpec(
    name="resnet18", display_name="ResNet-18", module=ResNet18, input_rank=3, channels=3,
    normalisation="standardise", feature_kinds=IMAGE_FEATURES, options=("cpu_ops",),
    imagenet=ImageNetCheckpoint(  # torchvision's ResNet18_Weights.IMAGENET1K_V1
        file="resnet18-f37072fd.pth",
        url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
        sha256="f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
        head="fc"))
