"""Operations written out for XLA's CPU backend, where its own lowering is slow: the
depthwise convolution as shifted copies (`DepthwiseConv`, used when `model.depthwise`
is 'shifted', which 'auto' picks on the CPU) and the max-pool gradient as gathers per
phase (`max_pool`, torch's tie rule, 2x faster for ResNet-18's stem pool on the CPU).
Both give the results of the plain versions (`layers` chooses; the parity and gradient
tests compare them).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any


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
def max_pool(x, window: int, stride: int, padding: int):
    return nn.max_pool(x, (window, window), strides=(stride, stride),
                       padding=((padding, padding), (padding, padding)))


def _max_pool_forward(x, window, stride, padding):
    return max_pool(x, window, stride, padding), x


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


max_pool.defvjp(_max_pool_forward, _max_pool_backward)
