"""SpectralCNN: the study's network trained from scratch on spectral images.

The study (section 5.2) describes 5 convolution blocks and 3 dense layers with
BatchNorm and Dropout between, but gives no widths. jaxgenre's choice (BUILD_NOTES.md,
"Models"): each block is conv 3x3 → BatchNorm → ReLU → max-pool 2x2, widths
(32, 64, 128, 256, 256), dropout after blocks 2-5; then global average pooling (so
any input size works, from a 128 x 129 segment to a whole 128 x 1292 clip), and dense
layers 256 → 128 → classes with dropout between. Everything is configurable.
"""

from __future__ import annotations

from typing import Any, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp

from jaxgenre.models.layers import batch_norm, conv, dense, max_pool
from jaxgenre.models.spec import IMAGE_FEATURES, ModelSpec


class SpectralCNN(nn.Module):
    num_classes: int = 10
    widths: Sequence[int] = (32, 64, 128, 256, 256)
    dense_widths: Sequence[int] = (256, 128)
    conv_dropout: float = 0.1
    dense_dropout: float = 0.3
    pool: int = 2
    dtype: Any = jnp.float32
    cpu_ops: bool = False  # the max-pool gradients written out (layers.max_pool)

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        chex.assert_rank(x, 4)
        x = x.astype(self.dtype)
        for i, width in enumerate(self.widths):
            x = conv(x, f"conv{i}", width, 3, dtype=self.dtype)
            x = nn.relu(batch_norm(x, f"bn{i}", train=train, eps=1e-5, dtype=self.dtype))
            if min(x.shape[1:3]) >= self.pool:  # small inputs: stop pooling, keep going
                x = max_pool(x, self.pool, stride=self.pool, cpu_ops=self.cpu_ops)
            if i > 0:
                x = nn.Dropout(self.conv_dropout, deterministic=not train)(x)
            self.sow("intermediates", f"block{i}", x)
        x = jnp.mean(x, axis=(1, 2))
        for i, width in enumerate(self.dense_widths):
            x = nn.relu(dense(x, f"dense{i}", width, dtype=self.dtype))
            if i == len(self.dense_widths) - 1:  # the penultimate layer: `jaxgenre.embed`'s
                self.sow("intermediates", "embedding", x)
            x = nn.Dropout(self.dense_dropout, deterministic=not train)(x)
        return dense(x, f"dense{len(self.dense_widths)}", self.num_classes,
                     dtype=self.dtype).astype(jnp.float32)


SPEC = ModelSpec(
    name="spectral_cnn", display_name="SpectralCNN", module=SpectralCNN, input_rank=3,
    channels=1, normalisation="standardise", feature_kinds=IMAGE_FEATURES,
    options=("cpu_ops",))
