"""jaxgenre: music genre classification in JAX/Flax, after "Empirical Analysis of
Music Genre Classification using CNNs" (GTZAN; SpectralCNN, ResNet-18,
EfficientNetV2-S on spectrogram, mel-spectrogram and MFCC inputs).

Importing jaxgenre changes nothing process-wide: the CPU speed options are chosen
explicitly (`jaxgenre.xla_cpu.apply_cpu_flags()` in launch.py and the benchmarks;
`config.model.depthwise` for the layers).
"""

__version__ = "0.1.0"
