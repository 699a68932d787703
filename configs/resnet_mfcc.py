"""The study's cell: ResNet-18, ImageNet-initialised, on the MFCC."""

from configs import base


def get_config():
    return base.cell(model="resnet18", feature="mfcc")
