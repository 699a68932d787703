"""The study's cell: SpectralCNN, trained from scratch, on the mel-spectrogram (dB)."""

from configs import base


def get_config():
    return base.cell(model="spectral_cnn", feature="mel")
