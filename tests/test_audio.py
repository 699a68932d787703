"""load_audio against librosa.load and the written samples; bad files → AudioDecodeError."""

import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import soundfile as sf

from jaxgenre import audio
from jaxgenre.testing import signals

SR = 22050


def _stereo(sr, seconds=1.5):
    n = int(sr * seconds)
    left = signals.linear_chirp(sr=sr, n=n, f0=100.0, f1=3000.0)
    right = signals.tone(440.0, sr=sr, n=n, amplitude=0.3)
    return np.stack([left, right], axis=1)  # (frames, channels)


FORMATS = [  # (extension, soundfile format, subtype, lossless)
    ("wav", "WAV", "PCM_U8", True), ("wav", "WAV", "PCM_16", True),
    ("wav", "WAV", "PCM_24", True), ("wav", "WAV", "PCM_32", True),
    ("wav", "WAV", "FLOAT", True), ("wav", "WAV", "DOUBLE", True),
    ("au", "AU", "PCM_16", True),  # GTZAN's original format
    ("flac", "FLAC", "PCM_24", True), ("ogg", "OGG", "VORBIS", False),
    ("mp3", "MP3", "MPEG_LAYER_III", False),
]
QUANTUM = {"PCM_U8": 2 / 256, "PCM_16": 2 / 65536, "PCM_24": 2 / 2 ** 24, "PCM_32": 1e-7,
           "FLOAT": 1e-7, "DOUBLE": 1e-7}


@pytest.mark.parametrize("ext,fmt,subtype,lossless", FORMATS)
def test_formats_match_librosa_load(tmp_path, ext, fmt, subtype, lossless):
    path = str(tmp_path / f"clip.{ext}")
    data = _stereo(SR)
    sf.write(path, data, SR, format=fmt, subtype=subtype)
    y = audio.load_audio(path, sr=SR)
    assert y.dtype == np.float32 and y.ndim == 1
    expected, _ = librosa.load(path, sr=SR, mono=True)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    if lossless:  # independent of librosa: the written samples, mixed to mono
        np.testing.assert_allclose(y, data.mean(axis=1), atol=QUANTUM[subtype])


def test_stereo_44k_is_mixed_down_and_resampled_like_librosa(tmp_path):
    path = str(tmp_path / "stereo44k.wav")
    sf.write(path, _stereo(44100), 44100, subtype="PCM_16")
    y = audio.load_audio(path, sr=SR)
    expected, _ = librosa.load(path, sr=SR)
    assert y.shape == expected.shape == (int(1.5 * SR),)
    np.testing.assert_allclose(y, expected, atol=1e-6)
    both = audio.load_audio(path, sr=SR, mono=False)
    assert both.shape == (2, y.size)
    np.testing.assert_allclose(both.mean(axis=0), y, atol=1e-6)
    native = audio.load_audio(path, sr=None)
    assert native.shape == (int(1.5 * 44100),)


def test_offset_and_duration_match_librosa(tmp_path):
    path = str(tmp_path / "clip.flac")
    sf.write(path, _stereo(16000, seconds=3.0), 16000)
    y = audio.load_audio(path, sr=SR, offset=0.5, duration=1.25)
    expected, _ = librosa.load(path, sr=SR, offset=0.5, duration=1.25)
    np.testing.assert_allclose(y, expected, atol=1e-6)


def _write_bad(tmp_path, kind):
    path = tmp_path / {"text": "notes.txt"}.get(kind, f"{kind}.wav")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "truncated_header":
        sf.write(str(path), np.zeros(1000, np.float32), SR, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:20])
    elif kind == "text":
        path.write_text("genre,label\nblues,0\n")
    elif kind == "nan":
        data = np.zeros(4000, np.float32)
        data[100] = np.nan
        sf.write(str(path), data, SR, subtype="FLOAT")
    elif kind == "inf":
        data = np.zeros(4000, np.float32)
        data[7] = -np.inf
        sf.write(str(path), data, SR, subtype="FLOAT")
    elif kind == "zero_samples":
        sf.write(str(path), np.zeros((0, 1), np.float32), SR, subtype="PCM_16")
    return str(path)


@pytest.mark.parametrize("kind,reason", [
    ("empty", "empty"), ("garbage", "corrupt or unsupported"),
    ("truncated_header", "corrupt or unsupported"), ("text", "corrupt or unsupported"),
    ("nan", "NaN or infinite"), ("inf", "NaN or infinite"), ("zero_samples", "zero samples"),
])
def test_bad_files_raise_audio_decode_error_naming_the_file(tmp_path, kind, reason):
    path = _write_bad(tmp_path, kind)
    with pytest.raises(audio.AudioDecodeError, match=reason) as info:
        audio.load_audio(path)
    assert path in str(info.value)
    assert info.value.path == path
    assert "Traceback" not in str(info.value)


def test_missing_path_directory_and_offset_past_the_end(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.wav"):
        audio.load_audio(str(tmp_path / "nowhere.wav"))
    with pytest.raises(audio.AudioDecodeError, match="directory"):
        audio.load_audio(str(tmp_path))
    path = str(tmp_path / "short.wav")
    sf.write(path, np.zeros(SR, np.float32), SR)
    with pytest.raises(audio.AudioDecodeError, match="beyond the end"):
        audio.load_audio(path, offset=2.0)
    with pytest.raises(ValueError, match="offset must be"):
        audio.load_audio(path, offset=-1.0)


def test_fix_length_pads_and_crops_numpy_and_jax():
    y = np.arange(10, dtype=np.float32)
    padded = audio.fix_length(y, 1.5, sr=10)
    np.testing.assert_array_equal(padded, np.r_[y, np.zeros(5, np.float32)])
    np.testing.assert_array_equal(audio.fix_length(y, 0.4, sr=10), y[:4])
    batch = jnp.ones((2, 3, 7))
    out = audio.fix_length(batch, 1.0, sr=5)
    assert isinstance(out, type(batch)) and out.shape == (2, 3, 5)
    out = audio.fix_length(batch, 1.0, sr=9)
    assert out.shape == (2, 3, 9) and float(out[..., 7:].sum()) == 0.0
    # GTZAN-like lengths all become exactly 30 s.
    for n in (659_340, 661_500, 675_808):
        assert audio.fix_length(np.zeros(n, np.float32), 30.0, SR).shape == (661_500,)
    with pytest.raises(ValueError, match="positive length"):
        audio.fix_length(y, 0.0)
