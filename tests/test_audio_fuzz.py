"""Bad audio, generated (Hypothesis): random bytes, valid WAV / FLAC / OGG / MP3 / AU files
truncated or with bytes flipped, and headers with absurd fields (0 channels, 0 Hz,
2^31 frames). `load_audio` must give finite float32 audio or an `AudioDecodeError`
naming the file — no other exception, no NaN into the features, within a time bound
per file (Hypothesis' deadline) — and a folder of such files must list every one in
its data report."""

import io
import os
import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxgenre import audio, features
from jaxgenre.testing import signals

SR = 22050
FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "ogg": ("OGG", "VORBIS"),
           "mp3": ("MP3", "MPEG_LAYER_III"), "au": ("AU", "PCM_16")}
# The deadline times one file's decoding (typical: 0-6 ms; the JAX compile and decoder
# start-up are paid in _warm_up, before any example): 2 s is ~300x that, for a busy CPU.
FUZZ = settings(max_examples=60, deadline=2000, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _valid(ext: str) -> bytes:
    """A valid 0.5 s file of `ext` (a chirp), as bytes."""
    buffer = io.BytesIO()
    y = signals.linear_chirp(sr=SR, n=SR // 2, f0=200.0, f1=2000.0)
    fmt, subtype = FORMATS[ext]
    sf.write(buffer, y, SR, format=fmt, subtype=subtype)
    return buffer.getvalue()


VALID = {ext: _valid(ext) for ext in FORMATS}


def _check(path: str) -> str:
    """The property: finite float32 audio, or an AudioDecodeError naming `path`."""
    try:
        y = audio.load_audio(path, sr=SR)
    except audio.AudioDecodeError as e:
        assert path in str(e) and "\n" not in str(e)
        return "rejected"
    assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0
    assert np.all(np.isfinite(y))
    # ... and the features of what decodes are finite too (one compiled shape: 1 s).
    mel = features.melspectrogram_db(audio.fix_length(y, 1.0, sr=SR)[None], sr=SR)
    assert np.all(np.isfinite(np.asarray(mel)))
    return "decoded"


def _write(tmp_path, name: str, data: bytes) -> str:
    path = os.path.join(str(tmp_path), name)
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.fixture(scope="module", autouse=True)
def _warm_up(tmp_path_factory):
    """Hypothesis' deadline is per example, and must time decoding, not start-up: the
    first example would otherwise also pay for JAX's compile of the 1 s mel features
    (seconds on a busy 2-core CPU) and each decoder's first load. Done here once, on
    the valid files, which must decode."""
    folder = tmp_path_factory.mktemp("warm_up")
    for ext, data in VALID.items():
        assert _check(_write(folder, f"valid.{ext}", data)) == "decoded", ext


@FUZZ
@given(data=st.binary(min_size=1, max_size=4096),
       ext=st.sampled_from(sorted(FORMATS) + ["bin"]))
def test_random_bytes(tmp_path, data, ext):
    _check(_write(tmp_path, f"random.{ext}", data))


@pytest.mark.parametrize("ext", sorted(FORMATS))
@FUZZ
@given(cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files(tmp_path, ext, cut):
    valid = VALID[ext]
    _check(_write(tmp_path, f"cut.{ext}", valid[:max(1, int(len(valid) * cut))]))


@pytest.mark.parametrize("ext", sorted(FORMATS))
@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 7)),
                      min_size=1, max_size=20),
       in_header=st.booleans())
def test_flipped_bits(tmp_path, ext, flips, in_header):
    data = bytearray(VALID[ext])
    span = min(64, len(data)) if in_header else len(data)  # the header is where it hurts
    for where, bit in flips:
        data[int(where * span)] ^= 1 << bit
    _check(_write(tmp_path, f"flipped.{ext}", bytes(data)))


def _wav(channels: int, rate: int, bits: int, frames_claimed: int, payload: bytes) -> bytes:
    """A RIFF/WAVE file with the given header fields, whatever they say."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block & 0xFFFFFFFF, block & 0xFFFF,
                      bits)
    data_size = min(frames_claimed * max(block, 1), 0xFFFFFFFF)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + \
        struct.pack("<I", data_size) + payload
    return b"RIFF" + struct.pack("<I", min(len(body), 0xFFFFFFFF)) + body


def _au(channels: int, rate: int, frames_claimed: int, payload: bytes) -> bytes:
    """A Sun .au file (16-bit linear) with the given header fields."""
    size = min(frames_claimed * 2 * max(channels, 1), 0xFFFFFFFF)
    return struct.pack(">4sIIIII", b".snd", 24, size, 3, rate, channels) + payload


PAYLOAD = (np.sin(np.arange(4000) / 7.0) * 12000).astype("<i2").tobytes()


@FUZZ
@given(channels=st.sampled_from([0, 1, 2, 7, 65535]),
       rate=st.sampled_from([0, 1, 8, 8000, 22050, 48000, 2 ** 31 - 1, 2 ** 32 - 1]),
       bits=st.sampled_from([0, 8, 16, 17, 64]),
       frames=st.sampled_from([0, 1, 2000, 2 ** 31]),
       kind=st.sampled_from(["wav", "au"]))
def test_absurd_headers(tmp_path, channels, rate, bits, frames, kind):
    data = (_wav(channels, rate, bits, frames, PAYLOAD) if kind == "wav"
            else _au(channels, rate, frames, PAYLOAD))
    outcome = _check(_write(tmp_path, f"absurd.{kind}", data))
    # No channels, or a rate no audio has: never "decoded" (a 17-bit header, say, may be;
    # libsndfile reads it as it can, and the property above holds for what it gives).
    if channels == 0 or not audio.MIN_SR <= rate <= audio.MAX_SR:
        assert outcome == "rejected", (channels, rate, bits, frames, kind)


def test_a_folder_of_bad_files_lists_every_one_in_its_data_report(tmp_path):
    """Fifty files built the ways above (fixed seed), in a GTZAN-like folder beside one
    good clip per class: every file is in the report, as a clip or as a skipped file."""
    from jaxgenre.data import sources

    rng = np.random.default_rng(0)
    root = tmp_path / "genres_original"
    names = []
    for genre in ("blues", "jazz"):
        (root / genre).mkdir(parents=True)
        y = signals.linear_chirp(sr=SR, n=SR * 12, f0=100.0, f1=1000.0)
        sf.write(str(root / genre / f"{genre}.00000.wav"), y, SR)
        for i in range(25):
            ext = sorted(FORMATS)[i % len(FORMATS)]
            data = bytearray(VALID[ext])
            how = i % 3
            if how == 0:
                data = data[:int(rng.integers(1, len(data)))]
            elif how == 1:
                for at in rng.integers(0, min(64, len(data)), 8):
                    data[at] ^= 0xFF
            else:
                data = bytearray(rng.bytes(int(rng.integers(1, 2000))))
            name = f"{genre}/{genre}.{i + 1:05d}.{ext}"
            (root / name).write_bytes(bytes(data))
            names.append(name)
    source = sources.open_source("folder", root=str(tmp_path), clip_seconds=10.0,
                                 min_seconds=10.0, progress=False)
    rejected = {r["file"]: r["reason"] for r in source.report.rejected}
    kept = {c.clip_id for c in source.clips}
    assert kept == {"blues/blues.00000", "jazz/jazz.00000"}  # the bad files are too short
    assert set(names) == set(rejected)  # every one listed, none disappears
    assert all(rejected.values())
    text = source.report.format()
    assert all(name in text for name in names[:3])
