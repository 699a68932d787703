"""jaxgenre: music genre classification in JAX/Flax, after "Empirical Analysis of
Music Genre Classification using CNNs" (GTZAN; SpectralCNN, ResNet-18,
EfficientNetV2-S on spectrogram, mel-spectrogram and MFCC inputs)."""

__version__ = "0.1.0"
