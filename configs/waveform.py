"""The study's fourth input, trained: SampleCNN (jaxgenre/models/sample_cnn.py) on the
peak-normalised raw waveform, in 3 s segments; everything else is the study's recipe."""

from configs import base


def get_config():
    return base.cell(model="sample_cnn", feature="waveform")
