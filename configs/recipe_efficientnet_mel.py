"""The recipe to use for your own classifier, on EfficientNetV2-S and the mel-spectrogram:
the study's cell plus random crops, SpecAugment, AdamW with warm-up and cosine
decay, label smoothing and overlapping test windows (configs/base.recipe; the ablation
behind it is in BUILD_NOTES.md, "The recipe")."""

from configs import base


def get_config():
    return base.recipe(model="efficientnet_v2_s")
