"""`python -m jaxgenre.embed --model=musicnn_msd`: for a folder of files, the taggram and
embeddings equal musicnn's own TF graph fed the patches musicnn's extractor cuts
(librosa's mel spectrogram, 187 frames back to back; float32 where the extractor's
float16 overflows), and the tag names are musicnn's."""

from __future__ import annotations

import os
import subprocess
import sys

import librosa
import numpy as np
import pytest
import soundfile as sf

from jaxgenre import embed
from jaxgenre.models import musicnn_port
from jaxgenre.testing import signals

HERE = os.path.dirname(os.path.abspath(__file__))
pytestmark = pytest.mark.slow  # ~100 s on 2 cores: TensorFlow builds musicnn twice


def _extractor_patches(path: str) -> np.ndarray:
    """musicnn's extractor's batch_data, written out with librosa (reflect padding, the
    default of the librosa it required; float32 instead of its overflowing float16)."""
    y, sr = librosa.load(path, sr=16000)
    rep = librosa.feature.melspectrogram(y=y, sr=sr, hop_length=256, n_fft=512, n_mels=96,
                                         pad_mode="reflect").T
    rep = np.log10(10000 * rep.astype(np.float32) + 1)
    return np.stack([rep[t:t + 187] for t in range(0, rep.shape[0] - 187 + 1, 187)])


@pytest.mark.parametrize("name,checkpoint", [("musicnn_msd", "MSD_musicnn"),
                                             ("vgg_mtt", "MTT_vgg")])
def test_embed_equals_musicnns_graph_on_its_extractors_patches(name, checkpoint, tmp_path):
    folder = tmp_path / "songs"
    folder.mkdir()
    n = 7 * 16000
    song = (signals.linear_chirp(sr=16000, n=n) + 0.3 * signals.white_noise(n=n, seed=1))
    sf.write(str(folder / "one.wav"), song.astype(np.float32), 16000)
    sf.write(str(folder / "two.wav"), signals.clipped_square(sr=16000, n=4 * 16000), 16000)
    # 100 samples: too short for musicnn's front end (reflect padding needs 257): listed
    sf.write(str(folder / "tiny.wav"), signals.white_noise(n=100), 16000)
    out = tmp_path / "tags.npz"
    assert embed.main([f"--model={name}", f"--out={out}", str(folder)]) == 0
    with np.load(out, allow_pickle=False) as z:
        got = {k: z[k] for k in z.files}
    assert list(got["tag_names"]) == list(musicnn_port.tags(checkpoint))
    assert [os.path.basename(f) for f in got["failed_files"]] == ["tiny.wav"]
    assert [os.path.basename(f) for f in got["files"]] == ["one.wav", "two.wav"]
    inputs = {f"x{i}": _extractor_patches(f) for i, f in enumerate(got["files"])}
    np.savez(tmp_path / "inputs.npz", **inputs)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, os.path.join(HERE, "musicnn_tf_reference.py"),
                           str(tmp_path / "inputs.npz"), str(tmp_path / "ref.npz"), checkpoint],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = dict(np.load(tmp_path / "ref.npz"))
    for i in range(len(got["files"])):
        rows = got["window_file"] == i
        expected = reference[f"{checkpoint}/x{i}"]
        assert rows.sum() == len(expected) == (2 if i == 0 else 1)  # 7 s: two windows
        np.testing.assert_allclose(got["taggram"][rows], expected, atol=1e-4)
        np.testing.assert_allclose(got["clip_tags"][i], expected.mean(0), atol=1e-4)
        if "musicnn" in checkpoint:
            np.testing.assert_allclose(got["window_embeddings"][rows],
                                       reference[f"{checkpoint}/x{i}/penultimate"],
                                       atol=1e-3, rtol=1e-4)
        np.testing.assert_allclose(got["window_start_seconds"][rows],
                                   np.arange(rows.sum()) * 187 * 256 / 16000)
