"""PANNs' CNN14 (Kong, Cao, Iqbal, Wang, Wang & Plumbley, "PANNs: Large-Scale Pretrained
Audio Neural Networks for Audio Pattern Recognition", IEEE/ACM TASLP 2020), in Flax, layer
for layer as the authors' `Cnn14` (audioset_tagging_cnn's and panns_inference's
`models.py`) builds it, with that module's names, so its released 32 kHz AudioSet
state dict loads unchanged (`panns_port`). Parity against that very module is tested
(`tests/test_panns.py`).

Input: PANNs' log-mel image (`features.panns_logmel`, kind 'panns': 64 mel bands at
100 frames/s) as the adapter hands images over, NHWC `(batch, 64, frames, 1)`; at least
32 frames (five 2x2 poolings). Output: logits (the AudioSet head has 527 classes;
`sigmoid` of them is PANNs' `clipwise_output`).

  * `bn0`: a batch norm over the 64 mel bands (each band its own statistics), as PANNs
    applies it to the spectrogram before the convolutions;
  * six convolutional blocks (`conv_block1` .. `conv_block6`) of 64, 128, ..., 2048
    maps: 3x3 convolution without bias (padding 1), batch norm, ReLU, twice, then a 2x2
    average pool (none after the sixth) and dropout 0.2;
  * the mean over frequency, then the max plus the mean over time (PANNs' `Cnn14`; the
    3-frame max and average pooling before it belong to its decision-level variants);
  * dropout 0.5, `fc1` (2048 units) with ReLU: the 2048-d embedding, sown as
    'embedding' for `jaxgenre.embed`; dropout 0.5, then the head `fc_audioset`.

Deviations, both about training only: PANNs' classifier reads the embedding before its
last dropout, while a new head here (a probe or fine-tune, as PANNs' own transfer model
does) reads it after; and PANNs' SpecAugment and mixup live in its training loop and
model, where jaxgenre has them as `config.augment`. Batch norms are torch's (epsilon
1e-5, momentum 0.1), convolutions and dense layers initialised Xavier-uniform with zero
bias as PANNs' `init_layer` does. Layer names are the checkpoint's module paths ('.' →
'_'). `width` scales every layer (64: the paper's; tests use small widths).
"""

from __future__ import annotations

from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgenre.models.layers import BatchNorm
from jaxgenre.models.spec import AudioSetCheckpoint, ModelSpec

N_MELS = 64
BLOCKS = 6
MIN_FRAMES = 2 ** (BLOCKS - 1)  # five 2x2 average pools
INIT = nn.initializers.xavier_uniform()  # PANNs' init_layer (bias 0)


def _bn(x, name: str, *, train: bool, dtype):
    return BatchNorm(epsilon=1e-5, momentum=0.9, dtype=dtype, name=name)(x, train=train)


class Cnn14(nn.Module):
    """`freeze_backbone`: a probe — everything below the head runs in inference mode
    (batch norms on their running statistics, no dropout) and passes no gradient."""
    num_classes: int = 527
    width: int = 64
    dtype: Any = jnp.float32
    freeze_backbone: bool = False

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        head_train, train = train, train and not self.freeze_backbone
        chex.assert_rank(x, 4)
        chex.assert_axis_dimension(x, 1, N_MELS)
        chex.assert_axis_dimension(x, 3, 1)
        if x.shape[2] < MIN_FRAMES:
            raise ValueError(f"CNN14 needs at least {MIN_FRAMES} frames (0.32 s at PANNs' "
                             f"100 frames/s), got {x.shape[2]}")
        # (batch, mel, frames, 1) → PANNs' (batch, frames, mel): time is the image's
        # height and frequency its width, as in torch's (batch, 1, time, mel)
        x = jnp.transpose(x[..., 0], (0, 2, 1))
        x = _bn(x, "bn0", train=train, dtype=self.dtype)[..., None]
        for block in range(1, BLOCKS + 1):
            features = self.width * 2 ** (block - 1)
            for i in (1, 2):
                x = nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                            kernel_init=INIT, dtype=self.dtype, param_dtype=jnp.float32,
                            name=f"conv_block{block}_conv{i}")(x)
                x = nn.relu(_bn(x, f"conv_block{block}_bn{i}", train=train, dtype=self.dtype))
            if block < BLOCKS:
                x = nn.avg_pool(x, (2, 2), strides=(2, 2), padding="VALID")
            x = nn.Dropout(0.2, deterministic=not train)(x)
        x = jnp.mean(x, axis=2)  # over frequency: (batch, frames, maps)
        x = jnp.max(x, axis=1) + jnp.mean(x, axis=1)
        x = nn.Dropout(0.5, deterministic=not train)(x)
        x = nn.relu(nn.Dense(self.width * 32, kernel_init=INIT, dtype=self.dtype,
                             param_dtype=jnp.float32, name="fc1")(x))
        self.sow("intermediates", "embedding", x)  # what `jaxgenre.embed` returns
        if self.freeze_backbone:
            x = jax.lax.stop_gradient(x)
        x = nn.Dropout(0.5, deterministic=not head_train)(x)
        logits = nn.Dense(self.num_classes, kernel_init=INIT, dtype=self.dtype,
                          param_dtype=jnp.float32, name="fc_audioset")(x)
        return logits.astype(jnp.float32)


# PANNs' 32 kHz CNN14, trained on AudioSet (mAP 0.431), CC BY 4.0. Zenodo publishes an
# md5 per file (record 3987831's file list), no sha256. The md5 is the one public
# projects pin for this file (e.g. Labbeti/dcase2022task6a's nn/urls.py, "Hash type:
# md5"), and the size the one several others pin beside it. The fetch checks both; a
# user's own file is checked against its `checkpoint_sha256`.
CHECKPOINT = AudioSetCheckpoint(
    file="Cnn14_mAP=0.431.pth",
    url="https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth?download=1",
    md5="541141fa2ee191a88f24a3219fff024e", size=327_428_481, entry="model",
    head="fc_audioset", record="https://zenodo.org/record/3987831")

# Raw log-mel in ('none'): PANNs' first layer is a batch norm over the bands.
SPEC = ModelSpec(
    name="panns_cnn14", display_name="PANNs CNN14 (AudioSet)", module=Cnn14, input_rank=3,
    channels=1, normalisation="none", feature_kinds=("panns",),
    options=("freeze_backbone",), head=("fc_audioset",), audioset=CHECKPOINT,
    min_frames=MIN_FRAMES)
