"""The built-in synthetic set: generation speed, the feature cache's speed-up, and the
linear baseline that shows the set is not trivially separable.

    python benchmarks/data.py [--clips_per_class=20] [--seconds=30] [--folds=5]

1. Generates the set (the default config's size) and times it.
2. Builds the mel-dB feature cache from scratch (generate + features + write), then
   opens it again (a second run), and prints both times and the ratio.
3. Fits logistic regression on each clip's mean MFCCs (20 numbers: the classic linear
   baseline), stratified k-fold cross-validated, and prints accuracy mean ± std and the
   confusion matrix; then the same on mean + std of MFCCs as a second reference.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from configs import base  # noqa: E402
from jaxgenre import features  # noqa: E402
from jaxgenre.data import cache, sources  # noqa: E402
from jaxgenre.features import FeatureSpec  # noqa: E402


def cross_validated(x: np.ndarray, y: np.ndarray, folds: int, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import StratifiedKFold, cross_val_predict, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_score(model, x, y, cv=cv)
    return scores, confusion_matrix(y, cross_val_predict(model, x, y, cv=cv))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips_per_class", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    config = base.get_config()
    if args.clips_per_class:
        config.data.synthetic.clips_per_class = args.clips_per_class
    if args.seconds:
        config.data.synthetic.seconds = config.data.clip_seconds = args.seconds
    source = sources.create_source(config)
    n = len(source)
    print(f"synthetic set: {n} clips ({config.data.synthetic.clips_per_class} per class) x "
          f"{config.data.synthetic.seconds:g} s, seed {config.seed}")

    start = time.perf_counter()
    audio = np.stack([source.load(ref) for ref in source.clips])
    generate = time.perf_counter() - start
    print(f"generation: {generate:.1f} s ({n / generate:.1f} clips/s, one thread)")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        first = cache.build_features(source, FeatureSpec.from_config(config.features), tmp, progress=False)
        t_first = time.perf_counter() - start
        start = time.perf_counter()
        second = cache.build_features(source, FeatureSpec.from_config(config.features), tmp, progress=False)
        np.asarray(second.features).sum()  # read every value back
        t_second = time.perf_counter() - start
        assert not first.hit and second.hit
    print(f"mel feature cache: first run {t_first:.2f} s (generate + features + write), "
          f"second run {t_second:.3f} s (open + read all) -> {t_first / t_second:.0f}x")

    labels = np.array([ref.label for ref in source.clips])
    mfcc = np.asarray(features.mfcc(audio, sr=config.features.sr))
    for name, x in (("mean MFCC (20 dims)", mfcc.mean(-1)),
                    ("mean + std MFCC (40 dims)", np.concatenate([mfcc.mean(-1), mfcc.std(-1)], 1))):
        scores, confusion = cross_validated(x, labels, args.folds, config.seed)
        print(f"logistic regression on {name}, {args.folds}-fold CV: accuracy "
              f"{scores.mean():.3f} ± {scores.std():.3f} (folds: "
              f"{', '.join(f'{s:.3f}' for s in scores)}; chance 0.100)")
        if name.startswith("mean MFCC"):
            print("confusion matrix (rows true, columns predicted; " +
                  " ".join(source.class_names) + "):")
            print("\n".join("  " + " ".join(f"{v:3d}" for v in row) for row in confusion))


if __name__ == "__main__":
    main()
