"""The STFT power against two more independent implementations: torch.stft and
tf.signal.stft (both installed by the test command: requirements-parity.txt and
requirements-tfds.txt). White noise, so no bin sits near a float32 noise floor."""

import numpy as np

from jaxgenre import features, signals

Y = signals.white_noise(n=22050 * 3, seed=3)


def _db(power):
    return 10.0 * np.log10(np.maximum(1e-10, power))


def test_spectrogram_matches_torch_stft():
    import torch

    for center in (True, False):
        spec = torch.stft(torch.from_numpy(Y), n_fft=2048, hop_length=512,
                          window=torch.hann_window(2048, periodic=True), center=center,
                          pad_mode="constant", return_complex=True)
        expected = _db(spec.abs().numpy().astype(np.float64) ** 2)
        got = np.asarray(features.spectrogram_db(Y, center=center, top_db=None))
        np.testing.assert_allclose(got, expected, atol=0.01)


def test_spectrogram_matches_tf_signal_stft():
    import tensorflow as tf
    spec = tf.signal.stft(Y, frame_length=2048, frame_step=512, fft_length=2048,
                          window_fn=tf.signal.hann_window, pad_end=False)
    expected = _db(np.abs(spec.numpy()).astype(np.float64).T ** 2)
    got = np.asarray(features.spectrogram_db(Y, center=False, top_db=None))
    np.testing.assert_allclose(got, expected, atol=0.01)
