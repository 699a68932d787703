"""PANNs' CNN14: the 'panns' front end against librosa and torchlibrosa, the Flax model
against a torch reference written from the paper (random weights, saved as PANNs saves
its checkpoint and read without torch), the checkpoint's own front end checked, the
published file fetched from a local server with its md5 and size, and the transfer
configs."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import soundfile
import torch

import panns_torch_reference as reference
from configs import base
from jaxgenre import embed, models, validation
from jaxgenre.errors import UserError
from jaxgenre.features import FeatureSpec
from jaxgenre.models import adapter, panns, panns_port
from jaxgenre.training import init_weights

FEATURE = FeatureSpec.from_config({"kind": "panns", "sr": 32000, "hop_length": 320})


def _audio(batch: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(32000 * seconds)) / 32000
    tones = np.sin(2 * np.pi * rng.uniform(80, 4000, (batch, 1)) * t)
    y = 0.3 * tones + 0.05 * rng.standard_normal((batch, t.size))
    y[:, :3000] = 0.0  # silence: the -100 dB floor
    return y.astype(np.float32)


def _save(model: torch.nn.Module, path, **torch_save) -> str:
    torch.save({"model": model.state_dict(), "iteration": 660000}, path, **torch_save)
    return str(path)


def _forward(variables, y: np.ndarray, **create):
    """(logits, embedding) of the Flax CNN14 on waveforms `y`, through the 'panns' feature
    and the adapter as training and embed feed it."""
    width, classes = panns_port.width_and_classes(variables)
    model = models.create("panns_cnn14", classes, width=width, **create)
    x = adapter.adapt(FEATURE.compute(y), normalisation="none")
    logits, state = model.apply(variables, x, train=False, mutable=["intermediates"])
    return np.asarray(logits), np.asarray(state["intermediates"]["embedding"][0])


def test_the_front_end_equals_librosa_and_torchlibrosa():
    y = _audio(2, 1.5)
    ours = np.asarray(FEATURE.compute(y))
    assert ours.shape == (2, 64, 151)
    for clip, got in zip(y, ours):
        want = librosa.power_to_db(librosa.feature.melspectrogram(
            y=clip, sr=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50, fmax=14000,
            pad_mode="reflect"), ref=1.0, amin=1e-10, top_db=None)
        np.testing.assert_allclose(got, want, atol=5e-4)
    with torch.no_grad():
        theirs = reference.Cnn14(width=4).logmel(torch.from_numpy(y))[:, 0].numpy()
    np.testing.assert_allclose(ours, theirs.transpose(0, 2, 1), atol=5e-4)
    assert ours.min() == pytest.approx(-100.0)  # silence at amin=1e-10, no top_db


def test_the_checkpoints_front_end_weights_are_the_ones_the_feature_computes():
    """PANNs' file holds its STFT and mel bank as weights: torchlibrosa's, here."""
    state = reference.Cnn14(width=4).state_dict()
    for key, want in panns_port.expected_front_end().items():
        np.testing.assert_allclose(state[key].numpy(), want, atol=1e-6)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-format"])
def test_the_flax_model_equals_the_torch_reference(tmp_path, legacy):
    torch.manual_seed(1)
    net = reference.randomised(reference.Cnn14(width=8, classes=11), seed=2)
    path = _save(net, tmp_path / "cnn14.pth", _use_new_zipfile_serialization=not legacy)
    variables = panns_port.load_pretrained(path)
    y = _audio(3, 1.2, seed=3)
    with torch.no_grad():
        want_logits, want_embedding = net(torch.from_numpy(y))
    logits, embedding = _forward(variables, y)
    assert logits.shape == (3, 11) and embedding.shape == (3, 256)
    np.testing.assert_allclose(logits, want_logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(embedding, want_embedding.numpy(), atol=1e-4)
    # bfloat16 compute stays near (float32 parameters)
    low, _ = _forward(variables, y, dtype="bfloat16")
    np.testing.assert_allclose(low, want_logits.numpy(), atol=0.1)


def test_the_small_reference_is_the_authors_cnn14_at_full_width():
    """The width-parameterised reference computes what panns_inference's Cnn14 computes
    on the same state dict, so the small-width tests stand for the real network."""
    torch.manual_seed(4)
    ours = reference.randomised(reference.Cnn14(), seed=5)
    theirs = reference.authors_cnn14()
    theirs.load_state_dict(ours.state_dict(), strict=True)  # every key, every shape
    y = torch.from_numpy(_audio(2, 0.8, seed=6))
    with torch.no_grad():
        logits, embedding = ours(y)
        out = theirs(y)
    torch.testing.assert_close(torch.sigmoid(logits), out["clipwise_output"], rtol=0, atol=1e-6)
    torch.testing.assert_close(embedding, out["embedding"], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_the_full_size_model_equals_the_authors_cnn14(tmp_path):
    """The paper's widths (79.7M parameters without the head), saved as the released
    file is, against panns_inference's own Cnn14: its clipwise_output and embedding."""
    torch.manual_seed(4)
    theirs = reference.authors_cnn14()
    reference.randomised(theirs, seed=5)
    variables = panns_port.load_pretrained(_save(theirs, tmp_path / "Cnn14.pth"))
    assert panns_port.width_and_classes(variables) == (64, 527)
    y = _audio(2, 1.0, seed=6)
    with torch.no_grad():
        out = theirs(torch.from_numpy(y))
    logits, embedding = _forward(variables, y)
    np.testing.assert_allclose(jax.nn.sigmoid(logits), out["clipwise_output"].numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(embedding, out["embedding"].numpy(), atol=1e-4)


@pytest.mark.parametrize("front_end,message", [
    ({"sr": 16000, "n_fft": 512, "hop_length": 160, "fmax": 8000.0},
     r"stft.conv_real.weight' \(shape \(257, 1, 512\), not \(513, 1, 1024\)\)"),
    ({"fmax": 8000.0}, r"logmel_extractor.melW' \(differs by up to"),
])
def test_a_checkpoint_trained_on_another_front_end_is_refused(tmp_path, front_end, message):
    path = _save(reference.Cnn14(width=4, **front_end), tmp_path / "other.pth")
    with pytest.raises(panns_port.ConversionError, match=message + ".*32 kHz front end"):
        panns_port.load_pretrained(path)


def test_a_state_dict_of_another_network_is_refused_naming_the_key(tmp_path):
    net = reference.Cnn14(width=4)
    state = net.state_dict()
    state["conv_block7.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save({"model": state}, tmp_path / "extra.pth")
    with pytest.raises(UserError, match="'conv_block7.conv1.weight' has no place"):
        panns_port.load_pretrained(str(tmp_path / "extra.pth"))
    del state["conv_block7.conv1.weight"], state["fc1.bias"]
    torch.save({"model": state}, tmp_path / "short.pth")
    with pytest.raises(UserError, match="fills nothing for Flax params/fc1/bias"):
        panns_port.load_pretrained(str(tmp_path / "short.pth"))
    torch.save(net.state_dict(), tmp_path / "plain.pth")  # a user's own: no 'model' entry
    assert panns_port.width_and_classes(
        panns_port.load_pretrained(str(tmp_path / "plain.pth"))) == (4, 527)


@pytest.mark.parametrize("key,value,message", [
    ("fc_audioset.weight", torch.zeros(()), "'fc_audioset.weight' has shape \\(\\), not"),
    ("conv_block1.conv1.weight", torch.zeros(()), "'conv_block1.conv1.weight' has shape"),
    ("conv_block1.conv1.weight", torch.zeros(0, 1, 3, 3), r"\(0, 1, 3, 3\), not"),
])
def test_a_tensor_of_an_impossible_shape_is_refused_not_a_crash(tmp_path, key, value,
                                                                 message):
    state = reference.Cnn14(width=4).state_dict()
    state[key] = value
    torch.save({"model": state}, tmp_path / "odd.pth")
    with pytest.raises(panns_port.ConversionError, match=message):
        panns_port.load_pretrained(str(tmp_path / "odd.pth"))


def test_a_half_precision_copy_of_the_weights_is_read(tmp_path):
    torch.manual_seed(3)
    net = reference.randomised(reference.Cnn14(width=4), seed=3)
    path = _save(net.half(), tmp_path / "half.pth")
    variables = panns_port.load_pretrained(path)
    np.testing.assert_array_equal(variables["params"]["fc1"]["kernel"],
                                  net.fc1.weight.detach().float().numpy().T)


@pytest.fixture()
def served(tmp_path, monkeypatch):
    """A small CNN14 checkpoint served from 127.0.0.1 as PANNs' published file, with its
    md5 and size pinned in `panns_port.CHECKPOINT`; torch's hub folder in tmp_path."""
    folder = tmp_path / "zenodo"
    folder.mkdir()
    torch.manual_seed(7)
    net = reference.randomised(reference.Cnn14(width=4), seed=8)
    path = _save(net, folder / "Cnn14_mAP=0.431.pth")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    data = open(path, "rb").read()
    pinned = dataclasses.replace(
        panns.CHECKPOINT, url=f"http://127.0.0.1:{httpd.server_address[1]}/Cnn14_mAP=0.431.pth",
        md5=hashlib.md5(data).hexdigest(), size=len(data))
    monkeypatch.setattr(panns_port, "CHECKPOINT", pinned)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    yield net, pinned, tmp_path / "torch" / "hub" / "checkpoints" / pinned.file
    httpd.shutdown()


def test_the_published_file_is_fetched_checked_converted_and_cached(served):
    net, pinned, fetched = served
    variables = panns_port.load_pretrained(progress=False)
    assert hashlib.md5(fetched.read_bytes()).hexdigest() == pinned.md5
    np.testing.assert_array_equal(variables["params"]["fc1"]["kernel"],
                                  net.fc1.weight.detach().numpy().T)
    cache = fetched.parent / f"{pinned.file}.{pinned.md5[:16]}.flax.msgpack"
    assert cache.is_file()
    fetched.unlink()  # converted once: the 327 MB file may go
    again = panns_port.load_pretrained(progress=False)
    jax.tree.map(np.testing.assert_array_equal, again, variables)
    assert not fetched.exists()  # read from the cache, not fetched again
    cache.write_bytes(b"damaged")  # with the file gone, a damaged cache names the fix
    with pytest.raises(UserError, match="cannot be read.*delete it"):
        panns_port.load_pretrained(progress=False)


def test_a_file_that_is_not_the_published_one_is_refused(served, monkeypatch):
    _, pinned, fetched = served
    monkeypatch.setattr(panns_port, "CHECKPOINT", dataclasses.replace(pinned, md5="0" * 32))
    with pytest.raises(FileNotFoundError, match="md5 .* expected 0{32}.*Download"):
        panns_port.load_pretrained(progress=False)
    assert not fetched.exists()
    fetched.parent.mkdir(parents=True, exist_ok=True)
    fetched.write_bytes(b"x" * pinned.size)  # the right size, other bytes, already there
    with pytest.raises(UserError, match="not Zenodo's .*delete it and download"):
        panns_port.load_pretrained(progress=False)


def test_a_users_file_is_checked_against_its_sha256(served, tmp_path):
    net, _, _ = served
    path = _save(net, tmp_path / "mine.pth")
    right = hashlib.sha256(open(path, "rb").read()).hexdigest()
    panns_port.load_pretrained(path, sha256=right)
    with pytest.raises(UserError, match="not the expected f{64}"):
        panns_port.load_pretrained(path, sha256="f" * 64)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        panns_port.load_pretrained(str(tmp_path / "nowhere.pth"))


@pytest.fixture()
def small(monkeypatch):
    """The registry's CNN14 at width 4, so the training path runs at test size."""
    spec = models.get_spec("panns_cnn14")
    monkeypatch.setitem(models.REGISTRY, "panns_cnn14", dataclasses.replace(
        spec, module=functools.partial(panns.Cnn14, width=4)))


def test_training_starts_from_the_weights_with_a_new_head(served, small):
    net, _, _ = served
    config = base.panns_transfer(probe=True)
    variables, note, warning = init_weights.initial_variables(config, 10, jax.random.PRNGKey(0))
    assert "PANNs' AudioSet weights" in note and warning == ""
    assert variables["params"]["fc_audioset"]["kernel"].shape == (128, 10)
    np.testing.assert_array_equal(variables["params"]["conv_block3_conv2"]["kernel"],
                                  net.conv_block3.conv2.weight.detach().numpy()
                                  .transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(variables["batch_stats"]["bn0"]["var"],
                                  net.bn0.running_var.numpy())


def test_a_users_checkpoint_of_another_width_is_a_config_error(tmp_path):
    path = _save(reference.Cnn14(width=4), tmp_path / "narrow.pth")
    config = base.panns_transfer(probe=True)
    config.model.checkpoint = path
    with pytest.raises(UserError, match="narrow.pth' holds a CNN14 of width 4.*64"):
        init_weights.initial_variables(config, 10, jax.random.PRNGKey(0))


def test_weights_that_cannot_be_had_are_one_line_naming_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(panns_port, "CHECKPOINT", dataclasses.replace(
        panns.CHECKPOINT, url="http://127.0.0.1:9/Cnn14_mAP=0.431.pth"))
    with pytest.raises(UserError, match="Download .*zenodo.*pretrained=False"):
        init_weights.initial_variables(base.panns_transfer(probe=True), 10,
                                    jax.random.PRNGKey(0))


def test_the_model_refuses_windows_shorter_than_its_five_poolings():
    # Traced, not run: the check is on shapes (running init op by op took 24 s).
    model = models.create("panns_cnn14", 3, width=4)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 64, 32, 1)))
    assert shapes["params"]
    with pytest.raises(ValueError, match="at least 32 frames"):
        jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 64, 31, 1)))


@pytest.mark.parametrize("change,message", [
    ({"model": {"normalisation": "standardise"}}, "log-mel images as they are"),
    ({"model": {"input_size": (64, 64)}}, "64 mel bands as they are"),
    ({"model": {"checkpoint": "https://example.org/Cnn14.pth"}}, "is a file path"),
    ({"features": {"kind": "mel"}}, "takes panns features"),
    ({"features": {"sr": 16000}}, "'panns' is a pretrained model's fixed front end"),
    ({"data": {"segment_seconds": 0.3}}, "at least 32 frames.*gives 30.*segment_seconds=0.32"),
    ({"model": {"pretrained": False}}, "freeze_backbone.*random weights"),
    ({"model": {"checkpoint_sha256": "ab" * 32}}, "checkpoint_sha256 checks config.model.checkpoint, which is unset"),
])
def test_pretrained_cnn14_with_another_front_end_is_a_config_error(change, message):
    config = base.panns_transfer(probe=True)
    for section, values in change.items():
        config[section].update(values)
    with pytest.raises(UserError, match=message):
        validation.check_config(config)


def test_both_transfer_configs_validate():
    for probe in (True, False):
        config = base.panns_transfer(probe=probe)
        validation.check_config(config)
        assert config.model.freeze_backbone is probe
        assert FeatureSpec.from_config(config.features).frames(
            config.data.segment_seconds) == 1000


def test_embed_gives_the_embedding_and_taggram_of_each_10_s_window(served, tmp_path):
    net, _, _ = served
    y = _audio(1, 21.5, seed=9)[0]
    soundfile.write(tmp_path / "song.wav", y, 32000, subtype="FLOAT")
    out = tmp_path / "panns.npz"
    assert embed.main(["--model=panns_cnn14", f"--out={out}", str(tmp_path / "song.wav")]) == 0
    got = np.load(out)
    assert got["window_embeddings"].shape == (2, 128) and got["taggram"].shape == (2, 527)
    np.testing.assert_array_equal(got["window_start_seconds"], [0.0, 10.0])
    assert got["tag_names"][0] == "audioset_000" and str(got["model"]) == "panns_cnn14"
    with torch.no_grad():
        logmel = net.logmel(torch.from_numpy(y[None]))
        windows = torch.cat([logmel[:, :, :1000], logmel[:, :, 1000:2000]])
        logits, embedding = net.from_logmel(windows)
    np.testing.assert_allclose(got["window_embeddings"], embedding.numpy(), atol=1e-4)
    np.testing.assert_allclose(got["taggram"], torch.sigmoid(logits).numpy(), atol=1e-5)
    np.testing.assert_allclose(got["clip_mean"][0], embedding.numpy().mean(0), atol=1e-4)


def test_embed_takes_a_users_own_checkpoint_with_its_sha256(tmp_path):
    torch.manual_seed(10)
    net = reference.randomised(reference.Cnn14(width=4), seed=10)
    path = _save(net, tmp_path / "mine.pth")
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    soundfile.write(tmp_path / "song.wav", _audio(1, 10.5)[0], 32000, subtype="FLOAT")
    out = tmp_path / "own.npz"
    args = ["--model=panns_cnn14", f"--checkpoint={path}", f"--out={out}",
            str(tmp_path / "song.wav")]
    assert embed.main(args + [f"--checkpoint_sha256={digest}"]) == 0
    with torch.no_grad():
        _, embedding = net.from_logmel(net.logmel(torch.from_numpy(_audio(1, 10.5)))[:, :, :1000])
    np.testing.assert_allclose(np.load(out)["window_embeddings"], embedding.numpy(), atol=1e-4)
    with pytest.raises(UserError, match="not the expected 0{64}"):
        embed.main(args + ["--checkpoint_sha256=" + "0" * 64])
    with pytest.raises(UserError, match="goes with --model=panns_cnn14 only"):
        embed.main(["--model=musicnn_msd", f"--checkpoint={path}", f"--out={out}", path])
