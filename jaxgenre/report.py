"""Results beside the study's: its tables 1-3 as data, and a printed comparison."""

from __future__ import annotations

from typing import Dict

# Test-set figures of the study, tables 1 (mel), 2 (spectrogram) and 3 (MFCC):
# (accuracy, macro precision, macro recall, macro F1).
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
METRICS = (("accuracy", "accuracy"), ("precision", "macro_precision"),
           ("recall", "macro_recall"), ("F1", "macro_f1"))


def format_test_results(evaluation: Dict, model: str, feature: str, data_source: str) -> str:
    """The test metrics (clip and segment level) next to the study's for this cell."""
    study = STUDY.get((model, feature))
    lines = [f"test results: {model} on {feature} ({data_source} data)",
             f"  {'metric':<10} {'clips':>8} {'segments':>9} {'study (GTZAN)':>14}"]
    for i, (label, key) in enumerate(METRICS):
        theirs = f"{study[i]:.4f}" if study else "-"
        lines.append(f"  {label:<10} {evaluation['clips'][key]:>8.4f} "
                     f"{evaluation['segments'][key]:>9.4f} {theirs:>14}")
    lines.append(f"  {'macro AUC':<10} {evaluation['clips']['macro_auc']:>8.4f} "
                 f"{evaluation['segments']['macro_auc']:>9.4f} {'-':>14}")
    if data_source not in ("folder", "tfds"):
        lines.append("  (the study's figures are on GTZAN; these are on the synthetic set)")
    return "\n".join(lines)
