"""From a batch of feature images `(batch, n_freq, n_frames)` to model inputs NHWC, or of
signals `(batch, samples)` to `(batch, samples, 1)`. Which of the two is the feature
spec's fact (`FeatureSpec.example_rank`), checked against the model spec's `input_rank`.

Three steps, each a config choice (BUILD_NOTES.md, "Models", says what the study most
likely did and why jaxgenre's defaults are what they are):
  1. per-example normalisation:
     'standardise' — zero mean, unit variance over each example (dB features span
       ~80 dB with an arbitrary offset; a constant example becomes all zeros);
     'imagenet' — the study's likely image pipeline: each example min-max scaled to
       [0, 1] like a saved spectrogram picture, then torchvision's
       Normalize(IMAGENET_MEAN, IMAGENET_STD) per channel (implies 3 channels);
  2. optional bilinear resize to `input_size` (height, width), e.g. 224 x 224 as image
     pipelines do; None keeps the native size (128 x 1292 for a 30 s mel clip);
  3. channels: 1 for a model trained from scratch, 3 (the channel repeated) for the
     ImageNet models.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp

from jaxgenre import models
from jaxgenre.errors import UserError
from jaxgenre.features import FeatureSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# "none": the feature as it is (musicnn's pretrained weights take raw log-mel patches;
# its first layer is a batch norm).
NORMALISATIONS = ("standardise", "imagenet", "none")


def adapt(features: jax.Array, *, input_size: Optional[Sequence[int]] = None,
          channels: int = 1, normalisation: str = "standardise",
          eps: float = 1e-5) -> jax.Array:
    """(batch, n_freq, n_frames) → (batch, H, W, channels) float32 model input."""
    chex.assert_rank(features, 3)
    if channels not in (1, 3):
        raise UserError(f"model inputs have 1 or 3 channels, got {channels}")
    if normalisation not in NORMALISATIONS:
        raise UserError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    if normalisation == "imagenet" and channels != 3:
        raise UserError("ImageNet normalisation is per RGB channel: use channels=3")
    x = features.astype(jnp.float32)
    if input_size is not None:
        height, width = _size(input_size)
        x = jax.image.resize(x, (x.shape[0], height, width), method="bilinear")
    axes = (1, 2)
    if normalisation == "none":
        x = jnp.repeat(x[..., None], channels, axis=-1)
    elif normalisation == "standardise":
        mean = jnp.mean(x, axis=axes, keepdims=True)
        x = (x - mean) / jnp.maximum(jnp.std(x, axis=axes, keepdims=True), eps)
        x = jnp.repeat(x[..., None], channels, axis=-1)
    else:
        low = jnp.min(x, axis=axes, keepdims=True)
        span = jnp.max(x, axis=axes, keepdims=True) - low
        unit = (x - low) / jnp.maximum(span, eps)
        x = (unit[..., None] - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    return x


def adapt_waveform(y: jax.Array, *, input_size: Optional[Sequence[int]] = None,
                   channels: int = 1, normalisation: str = "standardise",
                   eps: float = 1e-5) -> jax.Array:
    """A waveform batch (batch, samples) → (batch, samples, 1), standardised per example."""
    chex.assert_rank(y, 2)
    if input_size is not None or channels != 1 or normalisation != "standardise":
        raise UserError("a waveform input is standardised and kept at its length with one "
                        "channel: leave model.input_size and model.normalisation unset")
    y = y.astype(jnp.float32)
    mean = jnp.mean(y, axis=1, keepdims=True)
    return ((y - mean) / jnp.maximum(jnp.std(y, axis=1, keepdims=True), eps))[..., None]


def for_model(model_config, feature: FeatureSpec) -> Callable[[jax.Array], jax.Array]:
    """`adapt` (an image feature) or `adapt_waveform` (a signal) set up as `config.model`
    asks (its name, `input_size`, `normalisation`, which defaults to the model spec's),
    with the spec's channels: the one function training, evaluation and prediction apply
    to feature batches. A model whose `input_rank` is not the feature's example rank plus
    the channel axis is a `UserError`."""
    spec = models.get_spec(model_config.name)
    if spec.input_rank != feature.example_rank + 1:
        shape = "a signal (samples,)" if feature.is_waveform else "an image (rows, frames)"
        raise UserError(f"config.model.name={spec.name!r} takes inputs of rank "
                        f"{spec.input_rank} with channels, but features.kind="
                        f"{feature.kind!r} gives {shape}; pick a model that takes it")
    function = adapt_waveform if feature.is_waveform else adapt
    return functools.partial(function, input_size=model_config.input_size,
                             channels=spec.channels,
                             normalisation=model_config.normalisation or spec.normalisation)


def _size(input_size: Sequence[int]) -> Tuple[int, int]:
    size = tuple(int(s) for s in input_size)
    if len(size) != 2 or min(size) < 1:
        raise UserError(f"model.input_size must be (height, width), got {input_size!r}")
    return size
