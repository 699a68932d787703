"""ImageNet weights fetched when missing: torchvision's pinned file (its spec pointed at
a local server for the test), and a user's own checkpoint by URL with its sha256,
through to the variables training starts from."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch
from ml_collections import config_dict

from jaxgenre import models
from jaxgenre.training import init_weights
from jaxgenre.models import torchvision_port
from jaxgenre.testing import torch_reference

torchvision = torch_reference.import_torchvision()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, file name, sha256, state dict) of a torch.save'd ResNet-18."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, folder / "mine.pth")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield (f"http://127.0.0.1:{httpd.server_address[1]}", "mine.pth",
           hashlib.sha256((folder / "mine.pth").read_bytes()).hexdigest(), state)
    httpd.shutdown()


def _config(**model):
    return config_dict.ConfigDict({"model": {"name": "resnet18", "pretrained": True,
                                             "checkpoint": None, "checkpoint_sha256": None,
                                             **model}})


def test_torchvisions_file_is_fetched_with_its_full_sha256(served, tmp_path, monkeypatch):
    base, name, sha256, state = served
    spec = models.get_spec("resnet18")
    pinned = dataclasses.replace(spec.imagenet, url=f"{base}/{name}", sha256=sha256)
    monkeypatch.setitem(models.REGISTRY, "resnet18", dataclasses.replace(spec, imagenet=pinned))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    variables, note, warning = init_weights.initial_variables(_config(), 10, key=None)
    assert note == "ImageNet weights (torchvision)" and warning == ""
    fetched = tmp_path / "hub" / "checkpoints" / spec.imagenet.file
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == sha256
    np.testing.assert_array_equal(variables["params"]["conv1"]["kernel"],
                                  state["conv1.weight"].numpy().transpose(2, 3, 1, 0))
    # A pin that does not match what the server sends: nothing kept, random init + warning.
    fetched.unlink()
    for cache in fetched.parent.glob("*.flax.msgpack"):
        cache.unlink()
    wrong = dataclasses.replace(pinned, sha256="0" * 64)
    monkeypatch.setitem(models.REGISTRY, "resnet18", dataclasses.replace(spec, imagenet=wrong))
    variables, note, warning = init_weights.initial_variables(_config(), 10, key=None)
    assert variables is None and "wrong file (sha256" in warning and "random initialisation" in note
    assert not fetched.exists()


def test_a_users_own_checkpoint_by_url(served, tmp_path, monkeypatch):
    base, name, sha256, state = served
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    config = _config(checkpoint=f"{base}/{name}", checkpoint_sha256=sha256)
    variables, note, _ = init_weights.initial_variables(config, 4, key=None)
    assert note == f"ImageNet weights ({base}/{name})"
    assert variables["params"]["fc"]["kernel"].shape == (512, 4)
    np.testing.assert_array_equal(variables["params"]["layer1_0_conv1"]["kernel"],
                                  state["layer1.0.conv1.weight"].numpy().transpose(2, 3, 1, 0))
    with pytest.raises(ValueError, match="not config.model.checkpoint_sha256"):
        torchvision_port.load_imagenet("resnet18", 4, str(tmp_path / "hub" / "checkpoints" / name),
                                       sha256="f" * 64)


def test_a_named_checkpoint_that_is_missing_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="config.model.checkpoint=.*nowhere.pth.*cannot be had"):
        init_weights.initial_variables(_config(checkpoint=str(tmp_path / "nowhere.pth")), 4,
                                         key=None)


def test_a_checkpoint_url_ending_in_a_slash_is_one_line(served, tmp_path, monkeypatch):
    base, _, _, _ = served
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"config.model.checkpoint='http://127.0.0.1:\d+/' "
                                         r"names no file \(it ends in '/'\)") as caught:
        init_weights.initial_variables(_config(checkpoint=f"{base}/"), 4, key=None)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "hub").exists()  # nothing was fetched


def test_a_converted_cache_of_another_shape_is_converted_again(tmp_path):
    """The converted weights cached beside a checkpoint are a weights file too: one whose
    tree or shapes are not the architecture's (edited, or written for another one) is not
    served; the checkpoint beside it is converted again (equal to converting it fresh)."""
    import flax

    torch.manual_seed(0)
    path = str(tmp_path / "mine.pth")
    torch.save(torchvision.models.resnet18().state_dict(), path)
    fresh = torchvision_port.load_imagenet("resnet18", 10, path, sha256=None)
    cache = next(tmp_path.glob("*.flax.msgpack"))
    stored = flax.serialization.msgpack_restore(cache.read_bytes())
    stored["params"]["layer1_0_conv1"]["kernel"] = np.zeros((1, 1, 64, 64), np.float32)
    cache.write_bytes(flax.serialization.msgpack_serialize(stored))
    again = torchvision_port.load_imagenet("resnet18", 10, path, sha256=None)
    np.testing.assert_array_equal(again["params"]["layer1_0_conv1"]["kernel"],
                                  fresh["params"]["layer1_0_conv1"]["kernel"])
    assert flax.serialization.msgpack_restore(cache.read_bytes())[
        "params"]["layer1_0_conv1"]["kernel"].shape == (3, 3, 64, 64)


def test_a_users_unreadable_checkpoint_names_the_config_key(tmp_path):
    path = tmp_path / "mine.pth"
    path.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match="mine.pth.*fix or replace config.model.checkpoint"):
        torchvision_port.load_imagenet("resnet18", 10, str(path))
