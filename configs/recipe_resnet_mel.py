"""The recipe to use for your own classifier, on ResNet-18 and the mel-spectrogram:
the study's cell plus random crops, SpecAugment, AdamW with warm-up and cosine
decay, label smoothing and overlapping test windows (configs/base.recipe; the ablation
behind it is in BUILD_NOTES.md, "The recipe")."""

from configs import base


def get_config():
    return base.recipe(model="resnet18")
