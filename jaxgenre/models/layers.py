"""Conv / BatchNorm / Dense / max-pool helpers shared by the models.

They are plain functions called inside a parent's `@nn.compact` method, so every layer
becomes a direct child of the model with the torchvision module path as its name
(`layer1.0.conv1` → `layer1_0_conv1`). Porting torchvision weights is then a rename plus
transposes (`torchvision_port.py`), with no hand-kept table of names.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgenre.models import cpu_ops as cpu_ops_lib

Dtype = Any


# `config.model.depthwise`'s values: how the operations `cpu_ops` writes out for XLA's
# CPU backend run — 'shifted': those versions (the name is the depthwise convolution's,
# the switch's first user), 'xla': XLA's own lowering, 'auto': the first on the CPU.
DEPTHWISE = ("xla", "shifted")


def conv(x, name: str, features: int, kernel: int, *, stride: int = 1, groups: int = 1,
         bias: bool = False, dtype: Dtype = jnp.float32, padding: Optional[int] = None,
         cpu_ops: bool = False):
    """torch.nn.Conv2d with symmetric padding (k - 1) // 2 unless given. A depthwise
    convolution (groups == channels) runs as XLA's grouped convolution, or with
    `cpu_ops` as `DepthwiseConv`'s shifted copies (2.5x faster EfficientNetV2-S
    training on the CPU, BUILD_NOTES "Speed work: depthwise convolutions"); same
    parameters."""
    pad = (kernel - 1) // 2 if padding is None else padding
    if (cpu_ops and groups > 1 and groups == features == x.shape[-1]
            and not bias):
        return cpu_ops_lib.DepthwiseConv(kernel, stride=stride, padding=pad, dtype=dtype,
                                     name=name)(x)
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), feature_group_count=groups, use_bias=bias,
                   dtype=dtype, param_dtype=jnp.float32, name=name)(x)


class BatchNorm(nn.Module):
    """torch.nn.BatchNorm2d, including how it updates its running statistics.

    Training normalises with the batch's biased variance, like torch and flax; but the
    running variance is updated with the *unbiased* one (n / (n - 1)), as torch does and
    `flax.linen.BatchNorm` does not — so statistics stay equal to torch's step by step.
    `momentum` is flax's convention: 1 - torch momentum (torch's 0.1 → 0.9).
    Statistics are computed in float32 whatever `dtype`. Under `jit` with the batch
    sharded over a device mesh they cover the global batch (XLA adds the reductions).
    """
    epsilon: float = 1e-5
    momentum: float = 0.9
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool):
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        mean_stat = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        var_stat = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        x32 = x.astype(jnp.float32)
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x32, axis=axes)
            var = jnp.mean(jnp.square(x32 - mean), axis=axes)
            if not self.is_initializing():
                n = x.size // features
                unbiased = var * (n / max(n - 1, 1))
                mean_stat.value = self.momentum * mean_stat.value + (1 - self.momentum) * mean
                var_stat.value = self.momentum * var_stat.value + (1 - self.momentum) * unbiased
        else:
            mean, var = mean_stat.value, var_stat.value
        y = (x32 - mean) * (scale * jax.lax.rsqrt(var + self.epsilon)) + bias
        return y.astype(self.dtype)


def batch_norm(x, name: str, *, train: bool, eps: float, dtype: Dtype = jnp.float32):
    """torch.nn.BatchNorm2d(eps, momentum=0.1), named after its torchvision module."""
    return BatchNorm(epsilon=eps, momentum=0.9, dtype=dtype, name=name)(x, train=train)


def dense(x, name: str, features: int, *, dtype: Dtype = jnp.float32):
    return nn.Dense(features, dtype=dtype, param_dtype=jnp.float32, name=name)(x)


def max_pool(x, window: int, *, stride: int, padding: int = 0, cpu_ops: bool = False):
    """torch.nn.MaxPool2d(window, stride, padding) on NHWC (floating point), gradient
    included.

    The forward pass is `nn.max_pool`'s (padding counts as -inf). The gradient goes to
    the first maximum of each window in row-major order, as torch's does: XLA's own
    (select-and-scatter, `ge`) by default, or with `cpu_ops` `cpu_ops.max_pool`'s,
    written out because XLA lowers select-and-scatter on the CPU as a reduce-window over
    index arrays plus a scatter; written out it is 2x faster for ResNet-18's stem pool
    (`benchmarks/max_pool.py`). The two give the same gradient (tests/test_models.py).
    """
    if cpu_ops:
        return cpu_ops_lib.max_pool(x, window, stride, padding)
    return nn.max_pool(x, (window, window), strides=(stride, stride),
                       padding=((padding, padding), (padding, padding)))
