"""jaxgenre: music genre classification in JAX/Flax, after "Empirical Analysis of
Music Genre Classification using CNNs" (GTZAN; SpectralCNN, ResNet-18,
EfficientNetV2-S on spectrogram, mel-spectrogram and MFCC inputs)."""

from jaxgenre import xla_cpu as _xla_cpu

__version__ = "0.1.0"

# Before anything starts JAX's backend: XLA reads XLA_FLAGS once (see xla_cpu.py).
_xla_cpu.apply_cpu_flags()
