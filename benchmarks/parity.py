"""Measured parity with librosa: max and mean |Δ| per feature over the test signals.

    python benchmarks/parity.py [--seconds=30]

The tests assert the bounds (0.01 dB, 0.02 for MFCC); this prints the figures that
BUILD_NOTES.md records, over every built-in signal × ref (1.0, 'max') × center.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from jaxgenre import features, reference, signals  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    clips = signals.test_signals(seconds=args.seconds)
    batch = np.stack(list(clips.values()))
    print(f"{len(clips)} signals x {args.seconds:g} s: {', '.join(clips)}")
    print(f"{'feature':<8} {'ref':>5} {'center':>7} {'max|Δ|':>10} {'mean|Δ|':>10}  worst signal")
    for kind in ("spec", "mel", "mfcc"):
        for ref in (1.0, "max"):
            for center in (True, False):
                got = np.asarray(features.compute(batch, kind=kind, ref=ref, center=center))
                diffs = [np.abs(got[i] - reference.librosa_feature(y, kind=kind, ref=ref,
                                                                   center=center))
                         for i, y in enumerate(clips.values())]
                worst = int(np.argmax([d.max() for d in diffs]))
                print(f"{kind:<8} {ref!s:>5} {center!s:>7} {max(d.max() for d in diffs):>10.2e} "
                      f"{np.mean([d.mean() for d in diffs]):>10.2e}  {list(clips)[worst]}")


if __name__ == "__main__":
    main()
