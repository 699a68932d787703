"""`python -m jaxgenre.embed --workdir=RUN`: a trained run's embeddings and class
probabilities for any files, checked against predict's own path (the mean of a file's
window probabilities is what `Predictor.probabilities` votes), a hand-cut forward pass,
and a resumed run against an uninterrupted one."""

from __future__ import annotations

import glob
import os

import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from jaxgenre import audio, embed, experiments, predict
from jaxgenre.data import synthetic
from jaxgenre.errors import UserError
from test_train_run import _config

pytestmark = pytest.mark.slow  # ~100 s on 2 cores: a training run, then three embeddings

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("embed_run")
    experiments.run_one(_config(1), str(workdir))
    return str(workdir)


@pytest.fixture
def folder(tmp_path):
    music = tmp_path / "music" / "deeper"
    music.mkdir(parents=True)
    sf.write(str(music / "a.flac"), synthetic.generate_clip(6, 7, seconds=5.3), 22050)
    sf.write(str(tmp_path / "music" / "b.wav"), synthetic.generate_clip(2, 8, seconds=0.4), 16000)
    (tmp_path / "music" / "broken.mp3").write_bytes(b"ID3 not really")
    return tmp_path / "music"


def test_a_runs_embeddings_agree_with_predict_and_a_hand_cut_forward_pass(run_dir, folder,
                                                                          tmp_path):
    out = tmp_path / "emb.npz"
    assert embed.main([f"--workdir={run_dir}", f"--out={out}", str(folder)]) == 0
    with np.load(out, allow_pickle=False) as z:
        got = {k: z[k] for k in z.files}
    names = [os.path.basename(f) for f in got["files"]]
    assert names == ["b.wav", "a.flac"]  # the walk's order: b.wav, then deeper/a.flac
    assert [os.path.basename(f) for f in got["failed_files"]] == ["broken.mp3"]
    assert "broken.mp3" in got["failed_reasons"][0]
    predictor = predict.Predictor(run_dir)
    assert list(got["tag_names"]) == predictor.class_names
    frames = predictor.segment_frames
    for i, path in enumerate(got["files"]):
        rows = got["window_file"] == i
        # 5.3 s at 22050 Hz, hop 512: 229 frames, 43-frame segments: 5 windows; 0.4 s: 1.
        assert rows.sum() == (5 if names[i] == "a.flac" else 1)
        np.testing.assert_allclose(got["window_start_seconds"][rows],
                                   np.arange(rows.sum()) * frames * 512 / 22050)
        emb, tags = got["window_embeddings"][rows], got["taggram"][rows]
        np.testing.assert_allclose(got["clip_mean"][i], emb.mean(0), rtol=1e-6)
        np.testing.assert_allclose(got["clip_max"][i], emb.max(0), rtol=1e-6)
        np.testing.assert_allclose(tags.sum(1), 1.0, atol=1e-5)
        # predict scores the same windows and votes their mean probability
        y = audio.load_audio(path, sr=predictor.feature.sr)
        np.testing.assert_allclose(got["clip_tags"][i], predictor.probabilities(y), atol=2e-5)
        # and the model applied to windows cut by hand gives the same embeddings
        feature = np.asarray(predictor.feature.compute(y))
        if feature.shape[-1] < frames:
            feature = np.pad(feature, [(0, 0), (0, frames - feature.shape[-1])],
                             constant_values=feature.min())
        cut = np.stack([feature[:, s:s + frames] for s in range(0, feature.shape[-1] - frames + 1,
                                                                  frames)])
        _, sown = predictor.model.apply(
            {"params": predictor.state.params, "batch_stats": predictor.state.batch_stats},
            predictor.adapt(jnp.asarray(cut)), train=False, mutable=["intermediates"])
        # (embed runs whole batches of eval.batch_size; another batch shape may round
        # XLA's convolutions differently in the last float32 digits)
        np.testing.assert_allclose(emb, np.asarray(sown["intermediates"]["embedding"][0]),
                                   rtol=1e-4, atol=1e-5)
    assert not os.path.exists(f"{out}.partial")


def test_a_resumed_embedding_reuses_finished_files_and_ends_as_an_uninterrupted_one(
        run_dir, folder, tmp_path, monkeypatch):
    embedder = embed.from_run(run_dir)
    files = predict.expand([str(folder)])
    whole = embed.run(embedder, files, str(tmp_path / "whole.npz"), max_seconds=600)

    class Stop(Exception):
        pass

    def stop_after_one(items, **_):
        for n, item in enumerate(items):
            if n == 1:
                raise Stop
            yield item

    out = str(tmp_path / "resumed.npz")
    with pytest.raises(Stop):
        embed.run(embedder, files, out, max_seconds=600, progress=stop_after_one)
    assert not os.path.exists(out) and os.path.isdir(f"{out}.partial")
    calls = []
    real = embed.embed_file
    monkeypatch.setattr(embed, "embed_file", lambda e, p, m: calls.append(p) or real(e, p, m))
    resumed = embed.run(embedder, files, out, max_seconds=600)
    assert [os.path.basename(p) for p in calls] == ["broken.mp3", "a.flac"]  # b.wav was kept
    assert set(resumed) == set(whole)
    for key in whole:
        np.testing.assert_array_equal(resumed[key], whole[key], err_msg=key)
    # The folder of kept results went with the finished run; a file changed since its
    # result was kept is embedded again.
    assert not os.path.exists(f"{out}.partial")
    with pytest.raises(Stop):
        embed.run(embedder, files, out, max_seconds=600, progress=stop_after_one)
    sf.write(str(folder / "b.wav"), synthetic.generate_clip(3, 9, seconds=0.6), 16000)
    calls.clear()
    changed = embed.run(embedder, files, out, max_seconds=600)
    assert [os.path.basename(p) for p in calls] == ["b.wav", "broken.mp3", "a.flac"]
    assert not np.array_equal(changed["clip_mean"][0], whole["clip_mean"][0])
    # A kept result of another --max_seconds is not reused, and a damaged one (cut to
    # nothing) is embedded again instead of stopping the run.
    with pytest.raises(Stop):
        embed.run(embedder, files, out, max_seconds=1.0, progress=stop_after_one)
    calls.clear()
    again = embed.run(embedder, files, out, max_seconds=600)
    assert len(calls) == 3
    np.testing.assert_array_equal(again["window_file"], changed["window_file"])
    with pytest.raises(Stop):
        embed.run(embedder, files, out, max_seconds=600, progress=stop_after_one)
    for part in glob.glob(f"{out}.partial/*/*.npz"):
        open(part, "wb").close()
    calls.clear()
    embed.run(embedder, files, out, max_seconds=600)
    assert len(calls) == 3


def test_usage_errors_name_the_fix(run_dir, folder, tmp_path):
    with pytest.raises(UserError, match="must name a .npz file"):
        embed.main([f"--workdir={run_dir}", f"--out={tmp_path / 'x.txt'}", str(folder)])
    with pytest.raises(UserError, match="not a pretrained tagger"):
        embed.main(["--model=nothing", f"--out={tmp_path / 'x.npz'}", str(folder)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no audio files"):
        embed.main([f"--workdir={run_dir}", f"--out={tmp_path / 'x.npz'}", str(tmp_path / "empty")])
    # A path that is not there is a file that cannot be read: listed, and no file embedded.
    assert embed.main([f"--workdir={run_dir}", f"--out={tmp_path / 'x.npz'}",
                       str(tmp_path / "none.wav")]) == 1
    with np.load(tmp_path / "x.npz", allow_pickle=False) as z:
        assert list(z["failed_files"]) == [str(tmp_path / "none.wav")] and z["files"].size == 0
    with pytest.raises(UserError, match="--workdir must be the folder"):
        embed.main([f"--workdir={tmp_path}", f"--out={tmp_path / 'x.npz'}", str(folder)])
