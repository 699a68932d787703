"""musicnn (Pons & Serra, "musicnn: pre-trained convolutional neural networks for music
audio tagging", ISMIR 2019 LBD; ISC licence) and its VGG baseline, in Flax, layer for
layer as musicnn 0.1.0's `models.py` builds them, so its pretrained TF-1 checkpoints
load into them unchanged (`musicnn_port`).

Input: musicnn's log-mel patches (`features.musicnn_logmel`, kind 'musicnn') as the
adapter hands images over, NHWC `(batch, 96 mel bands, frames, 1)`; musicnn's own
layout `(batch, frames, 96)` is that transposed. Output: tag logits (the pretrained
heads have 50 tags; `sigmoid` of them is musicnn's taggram row).

musicnn (`MusiCNN`, 787k parameters at musicnn's sizes):
  * front end, musically motivated: the input batch-normalised, then timbral filters
    spanning 7 frames x 38 and x 67 bands (40% and 70% of 96; 204 maps each, the
    time axis zero-padded by 3, no padding across frequency) and temporal filters of
    128, 64 and 32 frames x 1 band ('same' padding; 51 maps each); each is ReLU, then
    batch norm, then a max over the whole frequency axis: 561 features per frame;
  * mid end: three 1-D convolutions over time (7 frames, zero-padded by 3, 64 maps,
    ReLU then batch norm), the second and third with residual connections; the front
    end's and the three outputs are concatenated (753 per frame);
  * back end: max and mean over time, interleaved per feature as TF flattens its
    (753, 2) stack, batch norm, dropout 0.5, dense 200 + ReLU, batch norm, dropout
    0.5, dense to the tags.
Batch norms are TF-1's (epsilon 1e-3, momentum 0.99), after the ReLU as musicnn has
them. Any number of frames works (musicnn was trained on 187: 3 s).

VGG (`MusicnnVGG`): five 3x3 'same' convolutions of 128 maps (ReLU, batch norm,
max-pools of 4x1 / stride 2, then 2x2, 2x2, 2x2 and 4x4, dropout 0.25 after the first
four), flattened, dropout 0.5, dense to the tags; it needs exactly 187 frames.

Layer names are the TF variable scopes ('conv2d_5', 'batch_normalization_9', '1CNN').
"""

from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgenre.models.layers import BatchNorm
from jaxgenre.models.spec import ModelSpec

N_MELS = 96
VGG_FRAMES = 187


def _bn(x, index: int, *, train: bool, dtype):
    """tf.compat.v1.layers.batch_normalization number `index` (its default scope names)."""
    name = "batch_normalization" + (f"_{index}" if index else "")
    return BatchNorm(epsilon=1e-3, momentum=0.99, dtype=dtype, name=name)(x, train=train)


def _conv_name(index: int, base: str = "conv2d") -> str:
    return base + (f"_{index}" if index else "")


def _patch(x, dtype) -> jnp.ndarray:
    """NHWC (batch, 96, frames, 1) → musicnn's (batch, frames, 96)."""
    chex.assert_rank(x, 4)
    chex.assert_axis_dimension(x, 1, N_MELS)
    chex.assert_axis_dimension(x, 3, 1)
    return jnp.transpose(x[..., 0], (0, 2, 1)).astype(dtype)


class MusiCNN(nn.Module):
    """`freeze_backbone`: a probe — everything below the head ('dense_1') runs in
    inference mode (batch norms on their running statistics, no dropout) and passes no
    gradient, so only the head learns (with `model.freeze_backbone`, the optimiser also
    leaves the backbone's weights as they are)."""
    num_classes: int = 50
    timbral_filters: int = 204      # int(1.6 * 128)
    temporal_filters: int = 51      # int(1.6 * 32)
    midend_filters: int = 64
    backend_units: int = 200
    dropout: float = 0.5
    dtype: Any = jnp.float32
    freeze_backbone: bool = False

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        head_train, train = train, train and not self.freeze_backbone
        x = _patch(x, self.dtype)[..., None]  # (batch, frames, 96, 1)
        x = _bn(x, 0, train=train, dtype=self.dtype)
        time_pad = jnp.pad(x, ((0, 0), (3, 3), (0, 0), (0, 0)))
        blocks = [(time_pad, self.timbral_filters, (7, int(0.4 * N_MELS)), "VALID"),
                  (time_pad, self.timbral_filters, (7, int(0.7 * N_MELS)), "VALID")]
        blocks += [(x, self.temporal_filters, (length, 1), "SAME") for length in (128, 64, 32)]
        front = []
        for i, (inputs, features, kernel, padding) in enumerate(blocks):
            y = nn.relu(nn.Conv(features, kernel, padding=padding, dtype=self.dtype,
                                param_dtype=jnp.float32, name=_conv_name(i))(inputs))
            y = _bn(y, i + 1, train=train, dtype=self.dtype)
            front.append(jnp.max(y, axis=2))  # over all frequencies: (batch, frames, maps)
        front = jnp.concatenate(front, axis=-1)  # (batch, frames, 561)
        self.sow("intermediates", "timbral", front[..., :2 * self.timbral_filters])
        self.sow("intermediates", "temporal", front[..., 2 * self.timbral_filters:])
        layers, h = [front], front
        for i in range(3):
            y = nn.Conv(self.midend_filters, (7,), padding=((3, 3),), dtype=self.dtype,
                        param_dtype=jnp.float32, name=_conv_name(5 + i))(h)
            y = _bn(nn.relu(y), 6 + i, train=train, dtype=self.dtype)
            h = y if i == 0 else y + h
            layers.append(h)
        mid = jnp.concatenate(layers, axis=-1)  # (batch, frames, 753)
        max_pool, mean_pool = jnp.max(mid, axis=1), jnp.mean(mid, axis=1)
        self.sow("intermediates", "max_pool", max_pool)
        self.sow("intermediates", "mean_pool", mean_pool)
        pooled = jnp.stack([max_pool, mean_pool], axis=-1).reshape(mid.shape[0], -1)
        pooled = _bn(pooled, 9, train=train, dtype=self.dtype)
        pooled = nn.Dropout(self.dropout, deterministic=not train)(pooled)
        dense = nn.relu(nn.Dense(self.backend_units, dtype=self.dtype, param_dtype=jnp.float32,
                                 name="dense")(pooled))
        penultimate = _bn(dense, 10, train=train, dtype=self.dtype)
        self.sow("intermediates", "penultimate", penultimate)
        self.sow("intermediates", "embedding", penultimate)  # what `jaxgenre.embed` returns
        if self.freeze_backbone:
            penultimate = jax.lax.stop_gradient(penultimate)
        dense = nn.Dropout(self.dropout, deterministic=not head_train)(penultimate)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32,
                          name="dense_1")(dense)
        return logits.astype(jnp.float32)


class MusicnnVGG(nn.Module):
    num_classes: int = 50
    filters: int = 128
    dropout: float = 0.25
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        x = _patch(x, self.dtype)
        chex.assert_axis_dimension(x, 1, VGG_FRAMES)  # the flatten fixes the length
        x = _bn(x[..., None], 0, train=train, dtype=self.dtype)
        pools = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)),
                 ((4, 4), (4, 4))]
        for i, (window, strides) in enumerate(pools):
            x = nn.relu(nn.Conv(self.filters, (3, 3), padding="SAME", dtype=self.dtype,
                                param_dtype=jnp.float32, name=f"{i + 1}CNN")(x))
            x = nn.max_pool(_bn(x, i + 1, train=train, dtype=self.dtype), window,
                            strides=strides, padding="VALID")
            self.sow("intermediates", f"pool{i + 1}", x)
            if i < 4:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = x.reshape(x.shape[0], -1)
        self.sow("intermediates", "embedding", x)  # what `jaxgenre.embed` returns
        x = nn.Dropout(0.5, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=jnp.float32,
                          name="dense")(x)
        return logits.astype(jnp.float32)


# Raw log-mel patches in ('none'), as the pretrained weights were trained; their
# checkpoints are musicnn_port.CHECKPOINTS' '<MSD|MTT>_<tagger_weights>'.
SPEC = ModelSpec(
    name="musicnn", display_name="musicnn (Pons & Serra)", module=MusiCNN, input_rank=3,
    channels=1, normalisation="none", feature_kinds=("musicnn",),
    options=("freeze_backbone",), head=("dense_1",), tagger_weights="musicnn")
VGG_SPEC = ModelSpec(
    name="musicnn_vgg", display_name="musicnn's VGG baseline", module=MusicnnVGG,
    input_rank=3, channels=1, normalisation="none", feature_kinds=("musicnn",),
    head=("dense",), tagger_weights="vgg", fixed_frames=VGG_FRAMES)
