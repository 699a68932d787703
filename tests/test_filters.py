"""Windows, mel filterbanks and DCT bases against librosa and scipy."""

import warnings

import librosa
import numpy as np
import pytest
import scipy.fft

from jaxgenre.features import filters

FILTERBANK_CASES = [
    dict(sr=22050, n_fft=2048),
    dict(sr=22050, n_fft=2048, n_mels=64, fmin=20.0, fmax=8000.0),
    dict(sr=16000, n_fft=512, n_mels=40),
    dict(sr=44100, n_fft=4096, n_mels=256),
    dict(sr=8000, n_fft=256, n_mels=128),  # more bands than bins: empty filters
]


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None, 1.0, 2.0, np.inf])
@pytest.mark.parametrize("case", FILTERBANK_CASES)
def test_mel_filterbank_matches_librosa(case, norm, htk):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns about empty filters in one case
        expected = librosa.filters.mel(**case, htk=htk, norm=norm)
    got = filters.mel_filterbank(**case, htk=htk, norm=norm)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_hz_mel_round_trip_and_librosa_scale():
    hz = np.array([0.0, 100.0, 999.0, 1000.0, 1001.0, 4000.0, 11025.0])
    for htk in (False, True):
        np.testing.assert_allclose(filters.hz_to_mel(hz, htk=htk),
                                   librosa.hz_to_mel(hz, htk=htk), rtol=1e-12)
        np.testing.assert_allclose(filters.mel_to_hz(filters.hz_to_mel(hz, htk=htk), htk=htk),
                                   hz, rtol=1e-10, atol=1e-9)


def test_mel_filterbank_rejects_bad_ranges():
    with pytest.raises(ValueError, match="fmin < fmax"):
        filters.mel_filterbank(sr=22050, n_fft=2048, fmin=9000.0, fmax=8000.0)
    with pytest.raises(ValueError, match="mel norm"):
        filters.mel_filterbank(sr=22050, n_fft=2048, norm="l2")


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", ("kaiser", 8.0)])
@pytest.mark.parametrize("win_length", [2048, 1000, 1001])
def test_window_matches_librosa(window, win_length):
    expected = librosa.util.pad_center(librosa.filters.get_window(window, win_length), size=2048)
    np.testing.assert_allclose(filters.stft_window(window, win_length, 2048), expected,
                               rtol=0, atol=1e-7)


@pytest.mark.parametrize("dct_type", [1, 2, 3])
@pytest.mark.parametrize("norm", [None, "ortho"])
@pytest.mark.parametrize("n_out", [13, 40])
def test_dct_matrix_matches_scipy(dct_type, norm, n_out):
    x = np.random.default_rng(1).standard_normal((40, 5))
    expected = scipy.fft.dct(x, type=dct_type, norm=norm, axis=0)[:n_out]
    got = filters.dct_matrix(n_out, 40, dct_type=dct_type, norm=norm).astype(np.float64) @ x
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())

