"""The study's cell: EfficientNetV2-S, ImageNet-initialised, on the mel-spectrogram (dB)."""

from configs import base


def get_config():
    return base.cell(model="efficientnet_v2_s", feature="mel")
