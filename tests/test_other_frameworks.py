"""The STFT power against two more independent implementations: torch.stft and
tf.signal.stft (both installed by the test command: requirements-parity.txt and
requirements-tfds.txt). White noise, so no bin sits near a float32 noise floor."""

import numpy as np
import pytest

from jaxgenre import features, signals

Y = signals.white_noise(n=22050 * 3, seed=3)


def _db(power):
    return 10.0 * np.log10(np.maximum(1e-10, power))


def test_spectrogram_matches_torch_stft():
    import torch

    def torch_db(center):
        spec = torch.stft(torch.from_numpy(Y), n_fft=2048, hop_length=512,
                          window=torch.hann_window(2048, periodic=True), center=center,
                          pad_mode="constant", return_complex=True)
        return _db(spec.abs().numpy().astype(np.float64) ** 2)

    for center in (True, False):
        expected = torch_db(center)
        got = np.asarray(features.spectrogram_db(Y, center=center, top_db=None))
        diff = np.abs(got - expected)
        if diff.max() > 0.01:  # once seen in a fresh venv and never again: say which side moved
            again = np.asarray(features.spectrogram_db(Y, center=center, top_db=None))
            pytest.fail(f"center={center}: max |Δ| {diff.max():.4g} dB at "
                        f"{np.unravel_index(diff.argmax(), diff.shape)}, "
                        f"{int((diff > 0.01).sum())} bins over 0.01 dB; recomputed: jaxgenre "
                        f"moved {np.abs(again - got).max():.3g}, torch moved "
                        f"{np.abs(torch_db(center) - expected).max():.3g}")


def test_spectrogram_matches_tf_signal_stft():
    import tensorflow as tf
    spec = tf.signal.stft(Y, frame_length=2048, frame_step=512, fft_length=2048,
                          window_fn=tf.signal.hann_window, pad_end=False)
    expected = _db(np.abs(spec.numpy()).astype(np.float64).T ** 2)
    got = np.asarray(features.spectrogram_db(Y, center=False, top_db=None))
    np.testing.assert_allclose(got, expected, atol=0.01)
