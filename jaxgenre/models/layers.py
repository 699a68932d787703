"""Conv / BatchNorm / Dense / max-pool helpers shared by the models.

They are plain functions called inside a parent's `@nn.compact` method, so every layer
becomes a direct child of the model with the torchvision module path as its name
(`layer1.0.conv1` → `layer1_0_conv1`). Porting torchvision weights is then a rename plus
transposes (`torchvision_port.py`), with no hand-kept table of names.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


DEPTHWISE = ("xla", "shifted")


def conv(x, name: str, features: int, kernel: int, *, stride: int = 1, groups: int = 1,
         bias: bool = False, dtype: Dtype = jnp.float32, padding: Optional[int] = None,
         depthwise: str = "xla"):
    """torch.nn.Conv2d with symmetric padding (k - 1) // 2 unless given. A depthwise
    convolution (groups == channels) runs as XLA's grouped convolution ('xla') or as
    `DepthwiseConv`'s shifted copies ('shifted': 2.5x faster EfficientNetV2-S training
    on the CPU, BUILD_NOTES "Speed work: depthwise convolutions"); same parameters."""
    pad = (kernel - 1) // 2 if padding is None else padding
    if depthwise not in DEPTHWISE:
        raise ValueError(f"depthwise must be one of {DEPTHWISE}, got {depthwise!r}")
    if (depthwise == "shifted" and groups > 1 and groups == features == x.shape[-1]
            and not bias):
        return DepthwiseConv(kernel, stride=stride, padding=pad, dtype=dtype, name=name)(x)
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), feature_group_count=groups, use_bias=bias,
                   dtype=dtype, param_dtype=jnp.float32, name=name)(x)


class DepthwiseConv(nn.Module):
    """A depthwise convolution (one k x k filter per channel) as k² shifted, scaled
    copies of the input, for XLA's CPU backend.

    Why: XLA's CPU convolution with `feature_group_count = channels` is slow, and its
    kernel gradient is lowered as if the convolution were dense (XLA's cost analysis
    counts ~100x the forward FLOPs; `benchmarks/depthwise.py`). As shifted
    multiply-adds, XLA fuses the forward and both gradients into elementwise loops:
    EfficientNetV2-S's train step got faster
    (BUILD_NOTES.md, "Performance and scale"). Same parameter ('kernel', shape
    (k, k, 1, channels)), same initialiser and same result as `nn.Conv` with
    `feature_group_count=channels` (the torchvision parity tests cover it).
    """
    kernel_size: int
    stride: int = 1
    padding: int = 0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, 1, x.shape[-1]),
                            jnp.float32).astype(self.dtype)
        windows = _windows(x.astype(self.dtype), k, self.stride, self.padding, fill=0.0)
        out = None
        for offset, window in enumerate(windows):
            term = window * kernel[offset // k, offset % k, 0]
            out = term if out is None else out + term
        return out


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


def max_pool(x, window: int, *, stride: int, padding: int = 0):
    """torch.nn.MaxPool2d(window, stride, padding) on NHWC (floating point), gradient
    included.

    The forward pass is `nn.max_pool`'s (padding counts as -inf). The gradient goes to
    the first maximum of each window in row-major order, as torch's does. Why not let
    JAX derive it: XLA lowers that gradient (select-and-scatter) on the CPU as a
    reduce-window over index arrays plus a scatter; written out as below it is 2x
    faster for ResNet-18's stem pool (`benchmarks/max_pool.py`).
    """
    return _max_pool(x, window, stride, padding)


def _windows(x, window: int, stride: int, padding: int, *, fill: float):
    """x[:, i::stride, j::stride, :] cut to the output size, for each offset (i, j) of a
    window x window window in row-major order, over x padded with `fill` (0 for a
    convolution, -inf for a max pool)."""
    n, h, w, c = x.shape
    out_h = (h + 2 * padding - window) // stride + 1
    out_w = (w + 2 * padding - window) // stride + 1
    padded = jax.lax.pad(x, jnp.array(fill, x.dtype),
                         ((0, 0, 0), (padding, padding, 0), (padding, padding, 0), (0, 0, 0)))
    for i in range(window):
        for j in range(window):
            yield jax.lax.slice(
                padded, (0, i, j, 0),
                (n, i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, c),
                (1, stride, stride, 1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x, window: int, stride: int, padding: int):
    return nn.max_pool(x, (window, window), strides=(stride, stride),
                       padding=((padding, padding), (padding, padding)))


def _max_pool_forward(x, window, stride, padding):
    return _max_pool(x, window, stride, padding), x


def _max_pool_backward(window, stride, padding, x, grad):
    n, h, w, c = x.shape
    out_h, out_w = grad.shape[1:3]
    # Which offset of its window each output's maximum came from: the first in
    # row-major order, as in torch. Found by comparing the window's values with each
    # other, not with the forward's output: XLA may recompute x here with other
    # rounding (fused differently), and an equality test against y would then miss.
    best, source = None, None
    for k, values in enumerate(_windows(x, window, stride, padding, fill=-jnp.inf)):
        if best is None:
            best, source = values, jnp.zeros(values.shape, jnp.int8)
        else:
            later = values > best
            best, source = jnp.where(later, values, best), jnp.where(later, jnp.int8(k), source)
    # Offset (i, j) of output (p, q) read padded input (i + stride * p, j + stride * q).
    # Gather the gradient per phase (row mod stride, column mod stride) of the padded
    # input: within a phase each offset is a whole-output shift, so no strided scatter.
    rows, cols = -(-(h + 2 * padding) // stride), -(-(w + 2 * padding) // stride)
    zero = jnp.zeros((), grad.dtype)
    phases = []
    for phase_i in range(stride):
        for phase_j in range(stride):
            total = jnp.zeros((n, rows, cols, c), grad.dtype)
            for i in range(phase_i, window, stride):
                for j in range(phase_j, window, stride):
                    a, b = i // stride, j // stride
                    total = total + jax.lax.pad(
                        jnp.where(source == i * window + j, grad, zero), zero,
                        ((0, 0, 0), (a, rows - out_h - a, 0), (b, cols - out_w - b, 0),
                         (0, 0, 0)))
            phases.append(total)
    # Interleave the phases back into rows and columns.
    full = jnp.stack(phases, axis=-2).reshape(n, rows, cols, stride, stride, c)
    full = full.transpose(0, 1, 3, 2, 4, 5).reshape(n, rows * stride, cols * stride, c)
    return (full[:, padding:padding + h, padding:padding + w, :],)


_max_pool.defvjp(_max_pool_forward, _max_pool_backward)
