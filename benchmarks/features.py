"""Feature speed: jaxgenre vs librosa, measured in one process, printed as ratios.

    python benchmarks/features.py [--clips=64] [--seconds=30] [--repeats=3] [--breakdown]

For a batch of random clips it times, for mel-dB and MFCC:
  * librosa one clip at a time (how users call it), and on the whole batch at once;
  * jaxgenre on the whole batch (jitted, warmed up, blocking on the result), with the
    batch already a device array, and again from a numpy array (host → device included);
and checks on the same data that the results still match librosa.
`--breakdown` adds where jaxgenre's time goes (frames, FFT, mel, dB), single-threaded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import librosa  # noqa: E402
import numpy as np  # noqa: E402

from jaxgenre import features  # noqa: E402
from jaxgenre.features import spectral, transforms  # noqa: E402

SR = 22050


def best_time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # warm-up (and compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def librosa_mel_db(y):
    return librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR))


def librosa_mfcc(y):
    return librosa.feature.mfcc(y=y, sr=SR)


def breakdown(batch: jax.Array, repeats: int) -> None:
    """How much of the mel-dB time is the FFT: the whole transform vs the FFT alone on
    the same frames (framed beforehand, outside the timing), both on one thread, clip
    by clip; and scipy's pocketfft on the same frames as a reference FFT speed."""
    import scipy.fft

    p = transforms._mel_params("mel", batch.shape[-1])
    whole = best_time(lambda: spectral.transform(batch, 0, p, batch.shape[0]), repeats)
    half = p.n_fft // 2
    framed = jax.jit(jax.vmap(lambda y: spectral.frames(jnp.pad(y, (half, half)), p)))(batch)
    fft_only = jax.jit(lambda f: jax.lax.map(
        lambda x: jnp.fft.rfft(x, axis=-1)[:, :8].real.sum(), f))
    t_fft = best_time(lambda: fft_only(framed), repeats)
    host = np.asarray(framed[:8])
    t_pocket = best_time(lambda: [scipy.fft.rfft(f, axis=-1, workers=1) for f in host],
                         repeats) * batch.shape[0] / 8
    n = batch.shape[0]
    print(f"\nwhere the time goes (mel-dB, one thread, {framed.shape[1]} frames of "
          f"{p.n_fft} per clip):")
    print(f"  whole transform (frames, window, FFT, |.|^2, mel, dB)  {1e3 * whole / n:6.2f} ms/clip")
    print(f"  XLA rfft alone on the same frames                      {1e3 * t_fft / n:6.2f} ms/clip"
          f"  ({100 * t_fft / whole:.0f}%)")
    print(f"  everything else                                        "
          f"{1e3 * (whole - t_fft) / n:6.2f} ms/clip")
    print(f"  scipy pocketfft rfft, same frames, 1 worker (reference) {1e3 * t_pocket / n:6.2f} ms/clip")
    banded = sum((hi - lo) * w.shape[1] for lo, hi, w in spectral.mel_blocks(p.mel, p.n_fft))
    print(f"  banded mel product: {100 * banded / (p.mel.n_mels * (1 + p.n_fft // 2)):.1f}% of the "
          f"dense product's multiply-adds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    clips = (0.1 * rng.standard_normal((args.clips, int(args.seconds * SR)))).astype(np.float32)
    on_device = jnp.asarray(clips)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.clips} clips x {args.seconds:g} s at {SR} Hz, float32; jax {jax.__version__} "
          f"on {jax.default_backend()} ({jax.devices()[0].device_kind}), librosa "
          f"{librosa.__version__}, {cores} CPU cores; best of {args.repeats}")
    header = (f"{'feature':<8} {'librosa/clip':>13} {'librosa batch':>14} {'jaxgenre':>10} "
              f"{'from numpy':>11} {'× per-clip':>11} {'× batch':>8} {'max|Δ|':>9}")
    print(header + "\n" + "-" * len(header))
    for kind, ref_fn, jax_fn in (("mel-dB", librosa_mel_db, features.melspectrogram_db),
                                 ("MFCC", librosa_mfcc, features.mfcc)):
        t_clip = best_time(lambda: [ref_fn(y) for y in clips], args.repeats)
        t_batch = best_time(lambda: ref_fn(clips), args.repeats)
        t_jax = best_time(lambda: jax_fn(on_device), args.repeats)
        t_numpy = best_time(lambda: jax_fn(clips), args.repeats)
        diff = float(np.max(np.abs(np.asarray(jax_fn(on_device)) - ref_fn(clips))))
        rate = lambda t: f"{args.clips / t:8.1f}/s"
        print(f"{kind:<8} {rate(t_clip):>13} {rate(t_batch):>14} {rate(t_jax):>10} "
              f"{rate(t_numpy):>11} {t_clip / t_jax:>10.1f}× {t_batch / t_jax:>7.1f}× "
              f"{diff:>9.1e}")
    if args.breakdown:
        breakdown(on_device, args.repeats)


if __name__ == "__main__":
    main()
