"""What the rest of jaxgenre needs to know about a model, declared once beside it.

Each model module (`spectral_cnn.py`, `resnet.py`, `efficientnet_v2.py`) ends with a
`SPEC = ModelSpec(...)`; `models/__init__.py` lists them in `REGISTRY`, and every other
module (the adapter, the weight port, the experiments, the study tables, predict, the
benchmarks) looks a model up there by its registry name. Adding a model is one new file
and one registry line.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Tuple

import flax.linen as nn

from jaxgenre.features import STUDY_KINDS, FeatureSpec

# The study's feature kinds whose examples are (rows, frames) images, as the feature spec
# says: what the study's image models take (musicnn's front end is musicnn's own).
IMAGE_FEATURES = tuple(k for k in STUDY_KINDS
                       if FeatureSpec.from_config({"kind": k}).example_rank == 2)


@dataclasses.dataclass(frozen=True)
class ImageNetCheckpoint:
    """torchvision's ImageNet-1k weights for a model: where they come from and how to
    check them. `head` is the Flax name of the classifier a port replaces."""
    file: str
    url: str
    sha256: str
    head: str


@dataclasses.dataclass(frozen=True)
class AudioSetCheckpoint:
    """A model's AudioSet weights as their publisher releases them: the file, where it is
    fetched from, the digest and size it must have (`md5` where the publisher gives only
    that, as Zenodo does), the key of the state dict inside the file (`entry`), the Flax
    name of the head a new task replaces, and the record that documents it."""
    file: str
    url: str
    md5: str
    size: int
    entry: str
    head: str
    record: str


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model's facts. `module(num_classes=..., dtype=..., **options)` builds it;
    `input_rank` counts the axes of one example as the model takes it (3: an NHWC image
    without its batch axis); `channels` is what the adapter makes of a feature image
    (1, or 3 for ImageNet weights: the channel repeated); `normalisation` is the
    adapter's default for it; `feature_kinds` the values of `config.features.kind` it
    can train on; `options` the extra constructor fields it accepts (e.g. 'cpu_ops',
    'freeze_backbone'); `head` the top-level parameter groups a pretrained model's new
    task replaces and trains at the full learning rate (default: the ImageNet
    checkpoint's head, if any)."""
    name: str
    display_name: str
    module: Callable[..., nn.Module]
    input_rank: int
    channels: int
    normalisation: str
    feature_kinds: Tuple[str, ...]
    imagenet: Optional[ImageNetCheckpoint] = None
    options: Tuple[str, ...] = ()
    head: Tuple[str, ...] = ()
    # Music-tagging weights (musicnn's checkpoints '<config.model.weights>_<this>'),
    # loaded when `config.model.pretrained`; None for models without.
    tagger_weights: Optional[str] = None
    # AudioSet weights (PANNs), loaded when `config.model.pretrained`; None for others.
    audioset: Optional[AudioSetCheckpoint] = None
    # The one window length (frames) the model takes, when it takes only one (musicnn's
    # VGG flattens its last pool); validation checks data.segment_seconds against it.
    fixed_frames: Optional[int] = None
    # The fewest frames a window may have (PANNs' CNN14: 32, five 2x2 poolings);
    # validation checks data.segment_seconds against it.
    min_frames: Optional[int] = None

    def head_names(self) -> Tuple[str, ...]:
        return self.head or ((self.imagenet.head,) if self.imagenet else ())
