"""SampleCNN: a 1-D CNN on the raw waveform, the study's fourth input (which it
extracted but never trained).

The design follows the sample-level CNN of Lee, Park, Kim and Nam, "Sample-level Deep
Convolutional Neural Networks for Music Auto-tagging Using Raw Waveforms" (SMC 2017):
a first convolution of 3 samples with stride 3, then blocks of a 3-sample convolution,
BatchNorm, ReLU and max-pooling by 3, so each block widens the receptive field
threefold. Their 3^9 model used 128-512 channels on 59,049-sample inputs; jaxgenre's
default is narrower (32-128 channels, 174,890 parameters) so that it trains on a laptop
CPU, and ends with global average pooling instead of a fixed-length flatten, so any
segment length works (3 s at 22050 Hz: 66,150 samples). Input (batch, samples, 1).
"""

from __future__ import annotations

from typing import Any, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp

from jaxgenre.models.layers import batch_norm, dense
from jaxgenre.models.spec import ModelSpec


class SampleCNN(nn.Module):
    num_classes: int = 10
    widths: Sequence[int] = (32, 32, 32, 64, 64, 64, 64, 128, 128, 128)
    dropout: float = 0.5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        chex.assert_rank(x, 3)
        x = x.astype(self.dtype)
        for i, width in enumerate(self.widths):
            first = i == 0
            x = nn.Conv(width, (3,), strides=(3,) if first else (1,),
                        padding="VALID" if first else "SAME", use_bias=False, dtype=self.dtype,
                        param_dtype=jnp.float32, name=f"conv{i}")(x)
            x = nn.relu(batch_norm(x, f"bn{i}", train=train, eps=1e-5, dtype=self.dtype))
            if not first and x.shape[1] >= 3:  # short inputs: stop pooling, keep going
                x = nn.max_pool(x, (3,), strides=(3,))
            self.sow("intermediates", f"block{i}", x)
        x = jnp.mean(x, axis=1)
        self.sow("intermediates", "embedding", x)  # what `jaxgenre.embed` returns
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return dense(x, "head", self.num_classes, dtype=self.dtype).astype(jnp.float32)


SPEC = ModelSpec(
    name="sample_cnn", display_name="SampleCNN (waveform)", module=SampleCNN, input_rank=2,
    channels=1, normalisation="standardise", feature_kinds=("waveform",))
