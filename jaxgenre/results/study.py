"""The study's numbers: its grid (three models by three features, and the waveform row it
did not train) and its test figures, tables 1-3. `tables` lays jaxgenre's results out
beside them."""

from __future__ import annotations

FEATURES = ("mel", "spec", "mfcc")
# The study extracted the waveform but trained no model on it: the grid adds that row.
EXTRA_FEATURES = ("waveform",)
# Beyond the study: musicnn pretrained on the Million Song Dataset, as a probe and
# fine-tuned (configs/base.music_cell), cells ("musicnn", mode) on musicnn's front end.
MUSIC_MODES = ("probe", "finetune")
MUSIC_TITLE = "Music-pretrained: musicnn, Million Song Dataset weights (beyond the study)"
MUSIC_LABELS = {"probe": "musicnn (MSD), probe", "finetune": "musicnn (MSD), fine-tuned"}
# The study's ImageNet-pretrained models (its transfer question).
IMAGENET_MODELS = ("resnet18", "efficientnet_v2_s")
TITLES = {"mel": "Table 1. Mel-spectrogram input", "spec": "Table 2. Spectrogram input",
          "mfcc": "Table 3. MFCC input",
          "waveform": "Waveform input (the study trained no model on it)"}
# Test-set figures of the study, tables 1 (mel), 2 (spectrogram) and 3 (MFCC):
# (accuracy, macro precision, macro recall, macro F1), keyed by registry name.
STUDY = {
    ("spectral_cnn", "mel"): (0.4552, 0.5522, 0.4585, 0.4379),
    ("resnet18", "mel"): (0.5759, 0.5328, 0.5839, 0.5472),
    ("efficientnet_v2_s", "mel"): (0.4759, 0.4677, 0.4850, 0.4618),
    ("spectral_cnn", "spec"): (0.5069, 0.5342, 0.5063, 0.4959),
    ("resnet18", "spec"): (0.4793, 0.5030, 0.4857, 0.4850),
    ("efficientnet_v2_s", "spec"): (0.4828, 0.4611, 0.4920, 0.4639),
    ("spectral_cnn", "mfcc"): (0.4724, 0.5242, 0.4782, 0.4646),
    ("resnet18", "mfcc"): (0.5345, 0.5394, 0.5384, 0.5332),
    ("efficientnet_v2_s", "mfcc"): (0.4483, 0.4390, 0.4485, 0.4315),
}
MODELS = tuple(dict.fromkeys(model for model, _ in STUDY))  # the study's three, in its order
# The study's figures above are in the order of registry.STUDY_METRICS.
