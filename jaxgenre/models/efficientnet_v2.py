"""EfficientNetV2-S, layer for layer as torchvision's `efficientnet_v2_s`.

Fused-MBConv stages 1-3, MBConv stages 4-6 with squeeze-excitation (squeeze width =
block input // 4, SiLU, sigmoid gate), BatchNorm eps 1e-3 (torch momentum 0.1), SiLU
everywhere, stochastic depth ("row" mode, probability 0.2 * block / 40) in training
only, dropout 0.2 before the classifier. Names are torchvision's module paths with
'.' → '_' (`features_4_0_block_2_fc1`). Input NHWC. Each stage's output is sown into
'intermediates' (`features_0` .. `features_7`).
"""

from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgenre.models.layers import batch_norm, conv, dense
from jaxgenre.models.spec import IMAGE_FEATURES, ImageNetCheckpoint, ModelSpec

_EPS = 1e-3
# (kind, expand_ratio, kernel, stride, in, out, layers): torchvision's v2-S table.
STAGES = (("fused", 1, 3, 1, 24, 24, 2), ("fused", 4, 3, 2, 24, 48, 4),
          ("fused", 4, 3, 2, 48, 64, 4), ("mb", 4, 3, 2, 64, 128, 6),
          ("mb", 6, 3, 1, 128, 160, 9), ("mb", 6, 3, 2, 160, 256, 15))
LAST_CHANNELS = 1280


class EfficientNetV2S(nn.Module):
    num_classes: int = 1000
    stochastic_depth: float = 0.2
    dropout: float = 0.2
    dtype: Any = jnp.float32
    cpu_ops: bool = False  # depthwise convolutions as shifted copies (layers.conv)

    def _conv_bn(self, x, name, features, kernel, *, train, stride=1, groups=1, act=True):
        """torchvision's Conv2dNormActivation: conv (no bias) → BN → SiLU."""
        x = conv(x, name + "_0", features, kernel, stride=stride, groups=groups,
                 dtype=self.dtype, cpu_ops=self.cpu_ops)
        x = batch_norm(x, name + "_1", train=train, eps=_EPS, dtype=self.dtype)
        return nn.silu(x) if act else x

    def _drop_path(self, x, rate: float, train: bool):
        """torchvision.ops.StochasticDepth(p, 'row'): drop whole examples, rescale."""
        if not train or rate == 0.0:
            return x
        keep = 1.0 - rate
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0], 1, 1, 1))
        return x * mask.astype(x.dtype) / keep

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        chex.assert_rank(x, 4)
        x = self._conv_bn(x.astype(self.dtype), "features_0", 24, 3, stride=2, train=train)
        self.sow("intermediates", "features_0", x)
        total = sum(s[-1] for s in STAGES)
        block_id = 0
        for stage, (kind, expand, kernel, stride, c_in, c_out, layers) in enumerate(STAGES, 1):
            for i in range(layers):
                s, inp = (stride, c_in) if i == 0 else (1, c_out)
                p = f"features_{stage}_{i}_block_"
                hidden = inp * expand
                y = x
                if kind == "fused":
                    if expand != 1:
                        y = self._conv_bn(y, p + "0", hidden, kernel, stride=s, train=train)
                        y = self._conv_bn(y, p + "1", c_out, 1, train=train, act=False)
                    else:
                        y = self._conv_bn(y, p + "0", c_out, kernel, stride=s, train=train)
                else:
                    y = self._conv_bn(y, p + "0", hidden, 1, train=train)
                    y = self._conv_bn(y, p + "1", hidden, kernel, stride=s, groups=hidden,
                                      train=train)
                    squeeze = jnp.mean(y, axis=(1, 2), keepdims=True)
                    squeeze = nn.silu(conv(squeeze, p + "2_fc1", max(1, inp // 4), 1, bias=True,
                                           dtype=self.dtype))
                    gate = nn.sigmoid(conv(squeeze, p + "2_fc2", hidden, 1, bias=True,
                                           dtype=self.dtype))
                    y = self._conv_bn(y * gate, p + "3", c_out, 1, train=train, act=False)
                if s == 1 and inp == c_out:
                    y = x + self._drop_path(y, self.stochastic_depth * block_id / total, train)
                x = y
                block_id += 1
            self.sow("intermediates", f"features_{stage}", x)
        x = self._conv_bn(x, "features_7", LAST_CHANNELS, 1, train=train)
        self.sow("intermediates", "features_7", x)
        x = jnp.mean(x, axis=(1, 2))
        self.sow("intermediates", "embedding", x)  # what `jaxgenre.embed` returns
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return dense(x, "classifier_1", self.num_classes, dtype=self.dtype).astype(jnp.float32)


SPEC = ModelSpec(
    name="efficientnet_v2_s", display_name="EfficientNetV2-S", module=EfficientNetV2S,
    input_rank=3, channels=3, normalisation="standardise", feature_kinds=IMAGE_FEATURES,
    imagenet=ImageNetCheckpoint(  # torchvision's EfficientNet_V2_S_Weights.IMAGENET1K_V1
        file="efficientnet_v2_s-dd5fe13b.pth",
        url="https://download.pytorch.org/models/efficientnet_v2_s-dd5fe13b.pth",
        sha256="dd5fe13b1d60ec15317ccc8ca158186e134d3366c3dde9cb9a4e301f2dc66c74",
        head="classifier_1"),
    options=("cpu_ops",))
