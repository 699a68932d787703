"""The study's input features: librosa-exact JAX transforms and the spec that picks one.

    from jaxgenre import features
    features.melspectrogram_db(y, sr=22050, n_mels=128)     # librosa-shaped functions
    spec = features.FeatureSpec.from_config(config.features)  # what a run computes
    x = spec.compute(y)

`transforms` holds the librosa-shaped functions and their input checks, `spectral` the
fused kernel behind them, `filters` the constant matrices (windows, mel banks, DCT), and
`spec` the one place that knows what a feature kind implies (issue 23, item 1).
"""

from jaxgenre.features.spec import KINDS, STUDY_KINDS, FeatureSpec, every_kind
from jaxgenre.features.transforms import (Ref, melspectrogram_db, mfcc, musicnn_logmel,
                                          spectrogram_db, waveform)

__all__ = ["KINDS", "STUDY_KINDS", "FeatureSpec", "Ref", "every_kind", "melspectrogram_db",
           "mfcc", "musicnn_logmel", "spectrogram_db", "waveform"]
