"""Shared test set-up: the repository root on sys.path, so `import jaxgenre` and
`import configs` work from a plain checkout."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# The suite runs with the CPU option launch.py applies (before JAX starts), chosen here
# as explicitly as there: importing jaxgenre itself changes no flag.
from jaxgenre import xla_cpu  # noqa: E402

xla_cpu.apply_cpu_flags()


import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

GENRES = ("blues", "jazz", "rock")
SR = 22050
# The files a GTZAN-like test folder holds besides its good clips, and why each is bad.
BAD_FILES = {
    "blues/blues.00099": "the file is empty",
    "jazz/jazz.00054": "corrupt or unsupported|no recognisable audio header",
    "rock/rock.00010": "too short: 2.00 s",
    "rock/notes.txt": "not an audio file",
}


def write_gtzan_folder(root, layout: str = "kaggle", seconds: float = 11.0) -> str:
    """A tiny GTZAN copy: 2 good clips per genre (tones), a stereo 44.1 kHz clip, and the
    bad files of BAD_FILES. layout 'kaggle' = genres_original/*.wav, 'original' =
    genres/*.au (Sun AU, 16-bit, like GTZAN's tarball)."""
    sub, ext, fmt = {"kaggle": ("genres_original", "wav", "WAV"),
                     "original": ("genres", "au", "AU")}[layout]
    base = os.path.join(str(root), sub)
    n = int(seconds * SR)
    for g_index, genre in enumerate(GENRES):
        os.makedirs(os.path.join(base, genre))
        for i in range(2):
            freq = 110.0 * (g_index + 1) * (i + 1)
            y = 0.3 * np.sin(2 * np.pi * freq * np.arange(n) / SR)
            sf.write(os.path.join(base, genre, f"{genre}.{i:05d}.{ext}"), y.astype(np.float32),
                     SR, format=fmt, subtype="PCM_16")
    t = np.arange(int(seconds * 44100)) / 44100
    stereo = np.stack([0.2 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 500 * t)], 1)
    sf.write(os.path.join(base, "rock", f"rock.00011.{ext}"), stereo.astype(np.float32), 44100,
             format=fmt, subtype="PCM_16")
    open(os.path.join(base, "blues", f"blues.00099.{ext}"), "wb").close()
    with open(os.path.join(base, "jazz", f"jazz.00054.{ext}"), "wb") as f:
        f.write(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" + bytes(range(200)))
    sf.write(os.path.join(base, "rock", f"rock.00010.{ext}"), np.zeros(2 * SR, np.float32), SR,
             format=fmt, subtype="PCM_16")
    with open(os.path.join(base, "rock", "notes.txt"), "w") as f:
        f.write("not audio")
    return str(root)


@pytest.fixture(params=["kaggle", "original"])
def gtzan_folder(request, tmp_path):
    return write_gtzan_folder(tmp_path / "gtzan", request.param)
