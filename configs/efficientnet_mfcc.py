"""The study's cell: EfficientNetV2-S, ImageNet-initialised, on the MFCC."""

from configs import base


def get_config():
    return base.cell(model="efficientnet_v2_s", feature="mfcc")
