"""Training-time augmentation as pure JAX functions of a PRNG key, run inside the jitted
train step on cached features (`steps.train_step` calls `augment_batch`):

    features ──gain (dB)──▶ adapt (the model's normalisation) ──SpecAugment──▶ mixup ──▶ model
    labels ───────────────────────────────── one-hot, label smoothing ──▶ mixup ──▶ loss

Each piece is one `config.augment.*` switch, all off in the study's configs. The keys are
`fold_in(fold_in(state.rng, state.step), AUGMENT_STREAM)`, so they are a pure function of
the seed and the step (a resumed run draws the same masks), and distinct from the
dropout key the step already used (which therefore did not change).

Random crops are drawn on the host instead (`data.pipeline.random_crops`): moving whole
30 s clips to the device to cut 3 s out of them there would move ten times the bytes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import optax

from jaxgenre.features import FeatureSpec

AUGMENT_STREAM = 0x5A  # fold_in constant separating augmentation keys from dropout's


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """What `config.augment` (and `train.label_smoothing`) turns on; zeros mean off."""
    gain_db: float = 0.0  # a per-example shift drawn from U(-gain_db, +gain_db) dB
    # The feature (how a gain acts on it); None: a dB image such as the mel default.
    feature: Optional[FeatureSpec] = None
    freq_masks: int = 0
    freq_mask_fraction: float = 0.125  # widest band: this fraction of the frequency axis
    time_masks: int = 0
    time_mask_fraction: float = 0.0625  # widest band: this fraction of the time axis
    mixup_alpha: float = 0.0
    label_smoothing: float = 0.0

    @property
    def soft_targets(self) -> bool:
        """Whether the loss needs class distributions instead of integer labels."""
        return self.mixup_alpha > 0 or self.label_smoothing > 0


def from_config(config, feature: FeatureSpec) -> Augmentation:
    """`config.augment` / `config.train.label_smoothing` → `Augmentation` of `feature`."""
    aug = config.augment
    return Augmentation(
        gain_db=float(aug.gain_db), feature=feature,
        freq_masks=int(aug.freq_masks) if aug.spec_augment else 0,
        freq_mask_fraction=float(aug.freq_mask_fraction),
        time_masks=int(aug.time_masks) if aug.spec_augment else 0,
        time_mask_fraction=float(aug.time_mask_fraction),
        mixup_alpha=float(aug.mixup_alpha),
        label_smoothing=float(config.train.label_smoothing))


def random_gain(key: jax.Array, features: jax.Array, *, max_db: float,
                feature: Optional[FeatureSpec] = None) -> jax.Array:
    """Each example as if its audio were `g ~ U(-max_db, max_db)` dB louder: a waveform is
    scaled by 10^(g/20); a dB spectrogram (mel, spec) shifted by g; an MFCC (orthonormal
    DCT-II of dB mels) has coefficient 0 moved by g·sqrt(n_mels) and the others unchanged.
    Exact up to the top_db floor, which moves with the clip's peak. Note: a per-example
    'standardise' normalisation removes any such shift again, so under it a gain changes
    nothing (tests/test_augment.py shows both)."""
    shift = jax.random.uniform(key, (features.shape[0],), minval=-max_db, maxval=max_db)
    if feature is not None and feature.is_waveform:
        return features * (10.0 ** (shift / 20.0))[:, None]
    if feature is not None and feature.kind == "mfcc":
        n_mels = int(feature.value("n_mels"))
        return features.at[:, 0, :].add(shift[:, None] * math.sqrt(n_mels))
    return features + shift[:, None, None]


def _bands(key: jax.Array, batch: int, size: int, count: int, max_width: int) -> jax.Array:
    """(batch, size) bool: the union of `count` bands per example, each of a width drawn
    uniformly from 0..max_width and a start uniformly among those that fit."""
    width_key, start_key = jax.random.split(key)
    widths = jax.random.randint(width_key, (batch, count), 0, max_width + 1)
    starts = jnp.floor(jax.random.uniform(start_key, (batch, count))
                       * (size - widths + 1)).astype(jnp.int32)
    index = jnp.arange(size)[None, None, :]
    inside = (index >= starts[..., None]) & (index < (starts + widths)[..., None])
    return jnp.any(inside, axis=1)


def spec_augment(key: jax.Array, images: jax.Array, *, freq_masks: int, time_masks: int,
                 freq_mask_fraction: float, time_mask_fraction: float) -> jax.Array:
    """SpecAugment's frequency and time masks (Park et al. 2019) on model inputs
    (batch, freq, time, channels): masked cells are set to 0, the mean of a standardised
    input. Mask widths are fractions of the axes, so they scale with the feature (PANNs'
    2 × 8 of 64 mel bins is 0.125; its 2 × 64 of ~1000 frames, 0.0625)."""
    chex.assert_rank(images, 4)
    batch, n_freq, n_time, _ = images.shape
    freq_key, time_key = jax.random.split(key)
    keep = jnp.ones((batch, n_freq, n_time), bool)
    if freq_masks:
        band = _bands(freq_key, batch, n_freq, freq_masks, int(freq_mask_fraction * n_freq))
        keep &= ~band[:, :, None]
    if time_masks:
        band = _bands(time_key, batch, n_time, time_masks, int(time_mask_fraction * n_time))
        keep &= ~band[:, None, :]
    return jnp.where(keep[..., None], images, jnp.zeros((), images.dtype))


def mixup(key: jax.Array, inputs: jax.Array, targets: jax.Array, *, alpha: float
          ) -> Tuple[jax.Array, jax.Array]:
    """mixup (Zhang et al. 2018): each example i becomes λᵢ·xᵢ + (1-λᵢ)·x₍ᵢ₋₁₎ with
    λᵢ ~ Beta(α, α), its target the same combination of the two class distributions. The
    partner is the previous example (the batch is already shuffled): a roll, so on a mesh
    it moves one example across each device boundary instead of gathering the batch."""
    lam = jax.random.beta(key, alpha, alpha, (inputs.shape[0],)).astype(jnp.float32)
    mix = lambda x: (lam.reshape((-1,) + (1,) * (x.ndim - 1)) * x
                     + (1 - lam.reshape((-1,) + (1,) * (x.ndim - 1))) * jnp.roll(x, 1, axis=0))
    return mix(inputs.astype(jnp.float32)).astype(inputs.dtype), mix(targets)


def augment_batch(aug: Augmentation, key: jax.Array, features: jax.Array, labels: jax.Array,
                  *, num_classes: int, adapt: Callable) -> Tuple[jax.Array, jax.Array]:
    """(model inputs, targets): targets are `labels` unchanged unless `aug.soft_targets`,
    then (batch, num_classes) distributions for `optax.softmax_cross_entropy`."""
    gain_key, mask_key, mix_key = jax.random.split(key, 3)
    if aug.gain_db:
        features = random_gain(gain_key, features, max_db=aug.gain_db, feature=aug.feature)
    inputs = adapt(features)
    if aug.freq_masks or aug.time_masks:
        inputs = spec_augment(mask_key, inputs, freq_masks=aug.freq_masks,
                              time_masks=aug.time_masks,
                              freq_mask_fraction=aug.freq_mask_fraction,
                              time_mask_fraction=aug.time_mask_fraction)
    if not aug.soft_targets:
        return inputs, labels
    targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if aug.label_smoothing:
        targets = optax.smooth_labels(targets, aug.label_smoothing)
    if aug.mixup_alpha:
        inputs, targets = mixup(mix_key, inputs, targets, alpha=aug.mixup_alpha)
    return inputs, targets
