"""Decoding at most what is used (issue 21, 7d): `duration` as librosa.load's, `load_clip`
(the data path) equal to decoding everything and cropping, `load_capped` (predict) saying
when it cut, headers read where a header answers (`info`, `check_clip`), and a memory bound
that holds whatever a header claims (a 7-hour WAV made sparse, a FLAC declaring 36 days)."""

import json
import math
import os
import struct
import time
import tracemalloc

import librosa
import numpy as np
import pytest
import soundfile as sf

from jaxgenre import audio
from jaxgenre.audio import read as audio_read
from jaxgenre.testing import signals

SR = 22050
FORMATS = [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS"),
           ("mp3", "MP3", "MPEG_LAYER_III"), ("au", "AU", "PCM_16")]


def _stereo(sr: int, seconds: float) -> np.ndarray:
    n = int(sr * seconds)
    left = signals.linear_chirp(sr=sr, n=n, f0=100.0, f1=3000.0)
    right = signals.tone(440.0, sr=sr, n=n, amplitude=0.3)
    return np.stack([left, right], axis=1)


def _wav_header(sr: int, channels: int, bits: int, data_bytes: int) -> bytes:
    """A canonical 44-byte PCM WAV header, written by hand (so it can lie)."""
    align = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", min(36 + data_bytes, 2 ** 32 - 1)) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * align, align, bits)
            + b"data" + struct.pack("<I", data_bytes))


def _peak_bytes(fn):
    """(fn(), the peak of Python-visible allocations (numpy's included) while it ran)."""
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("ext,fmt,subtype", FORMATS)
@pytest.mark.parametrize("offset,duration", [(0.0, 1.3), (0.4, 0.99999)])
def test_duration_and_offset_are_librosas(tmp_path, ext, fmt, subtype, offset, duration):
    """librosa.load(path, sr, offset, duration) is the reference: the same frames (librosa
    truncates duration * sr; 0.99999 s at 44.1 kHz is 44099 frames, not 44100), mixed and
    resampled the same way."""
    path = str(tmp_path / f"clip.{ext}")
    sf.write(path, _stereo(44100, 2.0), 44100, format=fmt, subtype=subtype)
    y = audio.load_audio(path, sr=SR, offset=offset, duration=duration)
    expected, _ = librosa.load(path, sr=SR, offset=offset, duration=duration)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-6)


@pytest.mark.parametrize("native_sr", [1000, 16000, 22050, 44100, 48000])
def test_load_clip_equals_decoding_everything_then_cropping(tmp_path, native_sr):
    """The data path reads clip_seconds (+ READ_MARGIN_S for the resampler's tail), and the
    clip is what decoding the whole file and cropping gave: cached features do not change."""
    path = str(tmp_path / "clip.wav")
    noise = 0.3 * np.random.default_rng(native_sr).standard_normal((int(2.8 * native_sr), 2))
    sf.write(path, noise.astype(np.float32), native_sr, subtype="FLOAT")
    whole = audio.fix_length(librosa.load(path, sr=SR)[0], 2.0, SR)
    clip = audio.load_clip(path, 2.0, sr=SR)
    assert clip.shape == (2 * SR,) and clip.dtype == np.float32
    np.testing.assert_allclose(clip, whole, atol=1e-6)
    # Shorter than the clip: zero-padded, like fix_length.
    short = audio.load_clip(path, 4.0, sr=SR)
    np.testing.assert_allclose(short, audio.fix_length(librosa.load(path, sr=SR)[0], 4.0, SR),
                               atol=1e-6)


def test_a_seven_hour_wav_is_read_capped_fast_and_small(tmp_path):
    """7 h of 44.1 kHz 16-bit mono (2.2 GB declared, a sparse file: a few KB on disk).
    Decoding everything would need 4.4 GB of float32 before resampling; capped at 30 s it
    needs a few MB, a fraction of a second, and is no "corrupt" file."""
    path = str(tmp_path / "seven_hours.wav")
    frames = 7 * 3600 * 44100
    with open(path, "wb") as f:
        f.write(_wav_header(44100, 1, 16, 2 * frames))
        f.truncate(44 + 2 * frames)
    assert os.stat(path).st_blocks * 512 < 1 << 20  # really sparse
    header = audio.info(path)
    assert (header.samplerate, header.channels, header.frames) == (44100, 1, frames)
    assert header.seconds == 25200.0

    start = time.perf_counter()
    decoded, peak = _peak_bytes(lambda: audio.load_capped(path, sr=SR, max_seconds=30.0))
    assert time.perf_counter() - start < 5.0
    assert decoded.samples.shape == (30 * SR,) and not decoded.samples.any()
    assert decoded.cut and decoded.file_seconds == 25200.0
    assert peak < 4 * 30 * 44100 * 4, peak  # ~30 s x source rate x 1 channel of float32

    # Validation decodes the clip, and takes the file's length from its header.
    (reason, seconds), peak = _peak_bytes(
        lambda: audio.check_clip(path, sr=SR, min_seconds=10.0, clip_seconds=30.0))
    assert reason is None and seconds == 25200.0
    assert peak < 4 * 31 * 44100 * 4, peak


def test_a_wav_declaring_a_huge_data_chunk_decodes_what_is_there(tmp_path):
    path = str(tmp_path / "liar.wav")
    samples = (0.5 * np.sin(np.arange(SR) * 0.07) * 32767).astype("<i2")
    with open(path, "wb") as f:
        f.write(_wav_header(SR, 1, 16, 2 ** 32 - 100) + samples.tobytes())
    y, peak = _peak_bytes(lambda: audio.load_audio(path, sr=SR))
    np.testing.assert_allclose(y, samples / 32768.0, atol=1e-7)
    assert peak < 8 * SR * 4, peak


def _lying_flac(tmp_path) -> str:
    """1 s of FLAC whose STREAMINFO declares 2**36 - 1 frames (36 days at 22.05 kHz)."""
    path = str(tmp_path / "liar.flac")
    sf.write(path, signals.tone(330.0, sr=SR, n=SR, amplitude=0.4), SR, subtype="PCM_16")
    data = bytearray(open(path, "rb").read())
    fields = int.from_bytes(data[18:26], "big")  # rate 20 | channels 3 | bits 5 | frames 36
    data[18:26] = (fields | ((1 << 36) - 1)).to_bytes(8, "big")
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_a_flac_declaring_36_days_never_sizes_a_buffer_by_its_header(tmp_path):
    """Before: load_audio asked numpy for 256 GiB (the header's length) and called the file
    "corrupt" with numpy's allocation error. Now no declared length sizes a buffer: what
    is asked for within the real data decodes (equal to librosa), and asking for more
    names the damage in one line, both in a few MB."""
    path = _lying_flac(tmp_path)
    y, peak = _peak_bytes(lambda: audio.load_audio(path, sr=SR, duration=0.5))
    np.testing.assert_allclose(y, librosa.load(path, sr=SR, duration=0.5)[0], atol=1e-6)
    assert peak < 4 * SR * 4, peak
    for duration in (None, 30.0):
        tracemalloc.start()
        try:
            with pytest.raises(audio.AudioDecodeError, match="header declares") as error:
                audio.load_audio(path, sr=SR, duration=duration)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert path in str(error.value) and "\n" not in str(error.value)
        assert "allocate" not in str(error.value)
        assert peak < 16 * SR * 4, peak
    assert audio.info(path).frames == (1 << 36) - 1  # the header, as it is


def test_the_audioread_fallback_is_capped_too(tmp_path, monkeypatch):
    """Files libsndfile rejects go through audioread (here its pure-Python WAV reader):
    the same frames as librosa.load(duration=...), and the cut reported."""
    path = str(tmp_path / "stereo.wav")
    sf.write(path, _stereo(16000, 2.0), 16000, subtype="PCM_16")

    def no_soundfile(*args, **kwargs):
        raise RuntimeError("forced: libsndfile unavailable")

    monkeypatch.setattr(audio_read, "read_soundfile", no_soundfile)
    decoded = audio.load_capped(path, sr=SR, max_seconds=1.5)
    expected, _ = librosa.load(path, sr=SR, duration=1.5)
    assert decoded.cut and decoded.samples.shape == expected.shape
    np.testing.assert_allclose(decoded.samples, expected, atol=1e-6)
    whole = audio.load_capped(path, sr=SR, max_seconds=2.0)
    assert not whole.cut and whole.samples.shape == (2 * SR,)


def test_load_capped_says_whether_the_file_went_on(tmp_path):
    path = str(tmp_path / "two_seconds.flac")
    sf.write(path, _stereo(SR, 2.0), SR)
    for max_seconds, cut in ((1.0, True), (1.99, True), (2.0, False), (3.0, False)):
        decoded = audio.load_capped(path, sr=SR, max_seconds=max_seconds)
        assert decoded.cut is cut, max_seconds
        assert decoded.samples.size == min(int(max_seconds * SR), 2 * SR)
        assert decoded.file_seconds == 2.0
    with pytest.raises(ValueError, match="max_seconds"):
        audio.load_capped(path, sr=SR, max_seconds=0.0)


def test_check_clip_answers_from_the_header_where_it_can(tmp_path, monkeypatch):
    short = str(tmp_path / "short.wav")
    sf.write(short, np.zeros(2 * SR, np.float32), SR, subtype="PCM_16")
    good = str(tmp_path / "good.au")
    sf.write(good, _stereo(SR, 11.0), SR, format="AU", subtype="PCM_16")
    empty = str(tmp_path / "empty.wav")
    open(empty, "wb").close()
    assert audio.check_clip(good, sr=SR, min_seconds=10.0, clip_seconds=30.0) == (None, 11.0)
    assert audio.check_clip(empty, sr=SR, min_seconds=10.0, clip_seconds=30.0)[0] == (
        "the file is empty (0 bytes)")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the header answered")

    monkeypatch.setattr(audio, "_decode", no_decoding)
    assert audio.check_clip(short, sr=SR, min_seconds=10.0, clip_seconds=30.0) == (
        "too short: 2.00 s < min_seconds=10 s", 2.0)


def test_info_reads_headers_and_rejects_impossible_ones(tmp_path):
    path = str(tmp_path / "stereo.ogg")
    sf.write(path, _stereo(48000, 1.0), 48000, format="OGG", subtype="VORBIS")
    header = audio.info(path)
    reference = sf.info(path)  # libsndfile's own header reader
    assert (header.samplerate, header.channels, header.frames) == (48000, 2, reference.frames)
    assert header.seconds == pytest.approx(librosa.get_duration(path=path))
    damaged = str(tmp_path / "rate.wav")
    with open(damaged, "wb") as f:  # a flipped bit: 537 MHz
        f.write(_wav_header(537_000_000, 1, 16, 2000) + bytes(2000))
    for probe in (audio.info, lambda p: audio.load_audio(p, sr=SR, duration=30.0)):
        with pytest.raises(audio.AudioDecodeError, match="sample rate of 537000000 Hz"):
            probe(damaged)
    with pytest.raises(FileNotFoundError):
        audio.info(str(tmp_path / "nowhere.wav"))
    with pytest.raises(audio.AudioDecodeError, match="corrupt or unsupported"):
        (tmp_path / "notes.wav").write_text("not audio")
        audio.info(str(tmp_path / "notes.wav"))
    # The house rule: a bad file is a UserError (one line, exit status 2 at an entry point).
    from jaxgenre import errors

    assert issubclass(audio.AudioDecodeError, errors.UserError)


# --- predict: a documented maximum, said when it cuts ------------------------------------

class _FakePredictor:
    """Stands in for a trained run (a real one takes ~20 s to train here; test_train_run
    covers predict on one): records what it is given, returns fixed probabilities."""
    seen = {}
    probabilities_value = np.array([0.7, 0.2, 0.1])

    def __init__(self, workdir):
        from ml_collections import config_dict

        from jaxgenre.features import FeatureSpec

        self.config = config_dict.ConfigDict({"features": {"sr": SR}})
        self.feature = FeatureSpec.from_config({"kind": "mel", "sr": SR})
        self.class_names = ["blues", "jazz", "rock"]

    def probabilities(self, y):
        _FakePredictor.seen[len(_FakePredictor.seen)] = y
        return self.probabilities_value


@pytest.fixture
def fake_predictor(monkeypatch):
    from jaxgenre import predict

    _FakePredictor.seen = {}
    monkeypatch.setattr(predict, "Predictor", _FakePredictor)
    return predict


def test_predict_cuts_at_max_seconds_and_says_so(tmp_path, fake_predictor, capsys):
    long_file, short_file = str(tmp_path / "long.wav"), str(tmp_path / "short.flac")
    sf.write(long_file, _stereo(44100, 5.0), 44100, subtype="PCM_16")
    sf.write(short_file, _stereo(SR, 1.0), SR)
    out = tmp_path / "predictions.json"
    assert fake_predictor.main(["--workdir=run", "--max_seconds=2", f"--json={out}",
                                long_file, short_file]) == 0
    # The model saw the first 2 s, exactly librosa.load(duration=2)'s.
    np.testing.assert_allclose(_FakePredictor.seen[0],
                               librosa.load(long_file, sr=SR, duration=2.0)[0], atol=1e-6)
    assert _FakePredictor.seen[1].size == SR
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{long_file}: blues 0.70")
    assert "cut: scored the first 2 s of 5 s (--max_seconds=2)" in lines[0]
    assert lines[1].startswith(f"{short_file}: blues 0.70") and "[cut:" not in lines[1]
    rows = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert rows[0]["cut"] is True and rows[0]["seconds_scored"] == 2.0
    assert rows[0]["file_seconds"] == 5.0
    assert rows[1]["cut"] is False and rows[1]["seconds_scored"] == 1.0


def test_predict_has_a_default_maximum(tmp_path, fake_predictor):
    from jaxgenre import predict

    assert predict.DEFAULT_MAX_SECONDS == 600.0
    path = str(tmp_path / "a.wav")
    sf.write(path, np.zeros(SR, np.float32), SR)
    out = tmp_path / "p.json"
    assert predict.main(["--workdir=run", f"--json={out}", path]) == 0
    assert json.loads(out.read_text())[0]["cut"] is False


@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf"])
def test_predict_refuses_a_bad_max_seconds_in_one_line(tmp_path, fake_predictor, capsys, value):
    assert fake_predictor.main(["--workdir=run", f"--max_seconds={value}", "x.wav"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --max_seconds") and "\n" not in err


def test_predict_writes_strict_json_when_the_model_gives_nan(tmp_path, fake_predictor,
                                                             monkeypatch, capsys):
    monkeypatch.setattr(_FakePredictor, "probabilities_value", np.array([math.nan, 0.5, 0.5]))
    path = str(tmp_path / "a.wav")
    sf.write(path, np.zeros(SR, np.float32), SR)
    out = tmp_path / "p.json"
    assert fake_predictor.main(["--workdir=run", f"--json={out}", path]) == 1
    rows = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c))
    assert "non-finite" in rows[0]["error"] and "top" not in rows[0]
    assert "ERROR" in capsys.readouterr().out


# --- review round 2: channels ------------------------------------------------------------

def test_many_channels_are_mixed_down_block_by_block(tmp_path):
    """8 channels at 192 kHz, 4 s of silence in FLAC (a few KB). Before: every channel
    was held as float32, then copied once more (49 MB for this file; 734 MB for the
    review's 30 s at 384 kHz). Now each block is mixed down and resampled as it is read
    (`audio_blocks`): memory follows the 22.05 kHz mono output plus a block or two,
    whatever the file's rate and channel count."""
    path = str(tmp_path / "wide.flac")
    rate, seconds = 192000, 4
    with sf.SoundFile(path, "w", rate, 8, format="FLAC", subtype="PCM_16") as f:
        for _ in range(seconds):
            f.write(np.zeros((rate, 8), np.int16))
    blocks = 3 * audio_read.BLOCK_SAMPLES * 4  # a block read, its mix, the resampler's
    decoded, peak = _peak_bytes(lambda: audio.load_capped(path, sr=SR, max_seconds=30.0))
    assert decoded.samples.shape == (seconds * SR,) and not decoded.cut
    assert peak < 3 * decoded.samples.nbytes + blocks, peak
    (reason, length), peak = _peak_bytes(
        lambda: audio.check_clip(path, sr=SR, min_seconds=1.0, clip_seconds=30.0))
    assert reason is None and length == seconds
    assert peak < 3 * decoded.samples.nbytes + blocks, peak


@pytest.mark.parametrize("offset,duration", [(0.0, None), (0.3, 0.9)])
def test_blockwise_mixdown_equals_librosa(tmp_path, offset, duration):
    """8 different channels over several blocks (BLOCK_SAMPLES / 8 frames a read), mixed
    down and resampled block by block: librosa.load's output to the bit, for mono and
    for every channel (mono=False), at 22.05 kHz and at the file's own rate."""
    path = str(tmp_path / "eight.wav")
    rng = np.random.default_rng(8)
    noise = (0.2 * rng.standard_normal((int(1.5 * 48000), 8))).astype(np.float32)
    sf.write(path, noise, 48000, subtype="FLOAT")
    assert noise.shape[0] > 2 * audio_read.BLOCK_SAMPLES // 8
    for sr in (SR, None):
        expected, _ = librosa.load(path, sr=sr, offset=offset, duration=duration)
        np.testing.assert_array_equal(
            audio.load_audio(path, sr=sr, offset=offset, duration=duration), expected)
    every, _ = librosa.load(path, sr=SR, mono=False, offset=offset, duration=duration)
    np.testing.assert_array_equal(
        audio.load_audio(path, sr=SR, mono=False, offset=offset, duration=duration), every)


def test_channel_counts_above_the_maximum_are_refused(tmp_path):
    """MAX_CHANNELS (64: 7th-order ambisonics; FLAC stops at 8, AAC at 48): more is a
    damaged header or a multitrack master, refused from the header alone in one line."""
    assert audio.MAX_CHANNELS == 64
    for channels in (64, 65, 1024, 4096):  # 4096: past libsndfile's 1024, so audioread's
        frames = 8000 if channels == 64 else 100
        path = str(tmp_path / f"c{channels}.wav")
        with open(path, "wb") as f:
            f.write(_wav_header(8000, channels, 16, channels * 2 * frames)
                    + bytes(channels * 2 * frames))
        if channels == 64:
            assert audio.info(path).channels == 64
            assert audio.load_audio(path, sr=None).shape == (8000,)
            continue
        for probe in (audio.info, audio.load_audio):
            with pytest.raises(audio.AudioDecodeError, match=f"{channels} channels") as e:
                probe(path)
            assert "at most 64" in str(e.value) and "\n" not in str(e.value)
        assert "at most 64" in audio.check_clip(path, sr=SR, min_seconds=0.5,
                                                clip_seconds=1.0)[0]


def test_paths_that_are_not_regular_files_are_decode_errors(tmp_path):
    """A FIFO is refused before anything opens it (an open would block); a dangling or
    looping symlink and a device are AudioDecodeErrors (UserErrors: one line), a plain
    missing path stays FileNotFoundError, and check_clip turns every one into a reason."""
    fifo = str(tmp_path / "pipe.wav")
    os.mkfifo(fifo)
    dangling, loop = str(tmp_path / "dangling.wav"), str(tmp_path / "loop.wav")
    os.symlink(str(tmp_path / "gone.wav"), dangling)
    os.symlink("loop.wav", loop)
    cases = {fifo: "FIFO", dangling: "which does not exist", loop: "symbolic links",
             os.devnull: "character device"}
    for path, words in cases.items():
        for probe in (audio.info, audio.load_audio):
            with pytest.raises(audio.AudioDecodeError, match=words):
                probe(path)
        assert words in audio.check_clip(path, sr=SR, min_seconds=1.0, clip_seconds=1.0)[0]
    missing = str(tmp_path / "missing.wav")
    with pytest.raises(FileNotFoundError):
        audio.load_audio(missing)
    assert audio.check_clip(missing, sr=SR, min_seconds=1.0, clip_seconds=1.0) == (
        "does not exist (removed while the data was being read?)", 0.0)
