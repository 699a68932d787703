"""musicnn in Flax with its pretrained weights, against musicnn's own TensorFlow graph
(its models.py under TF 2.21's compat.v1 graph mode, its checkpoints restored by
tf.compat.v1.train.Saver: tests/musicnn_tf_reference.py, in a subprocess)."""

import ast
import importlib.metadata
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgenre import features, models
from jaxgenre.models import musicnn_port, tf_bundle
from jaxgenre.testing import signals

CHECKPOINTS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
TOL = 1e-4
HERE = os.path.dirname(os.path.abspath(__file__))


def _rendered_patches():
    """A 9 s signal at 16 kHz through jaxgenre's musicnn front end, cut into 187-frame
    patches back to back as musicnn's extractor cuts them: (patches, 187, 96)."""
    n = 9 * 16000
    y = (signals.linear_chirp(sr=16000, n=n) + 0.5 * signals.clipped_square(sr=16000, n=n)
         + signals.white_noise(n=n, seed=3)).astype(np.float32)
    logmel = np.asarray(features.musicnn_logmel(y)).T  # (frames, 96)
    count = (logmel.shape[0] - 187) // 187 + 1
    return np.stack([logmel[i * 187:(i + 1) * 187] for i in range(count)])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("musicnn_reference")
    rng = np.random.default_rng(0)
    inputs = {"random": rng.uniform(0, 3.5, (3, 187, 96)).astype(np.float32),
              "random_long": rng.uniform(0, 3.5, (2, 300, 96)).astype(np.float32),
              "signal": _rendered_patches()}
    np.savez(folder / "inputs.npz", **inputs)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, os.path.join(HERE, "musicnn_tf_reference.py"),
                           str(folder / "inputs.npz"), str(folder / "outputs.npz"),
                           *CHECKPOINTS], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return inputs, dict(np.load(folder / "outputs.npz")), folder


def _apply(checkpoint, variables, x):
    model = models.create(musicnn_port.CHECKPOINTS[checkpoint][0], 50)
    nhwc = jnp.asarray(np.transpose(x, (0, 2, 1))[..., None])  # as the adapter hands over
    logits, state = jax.jit(lambda v, a: model.apply(v, a, train=False,
                                                     mutable=["intermediates"]))(variables, nhwc)
    return np.asarray(jax.nn.sigmoid(logits)), state["intermediates"]


@pytest.mark.parametrize("checkpoint", CHECKPOINTS)
def test_the_taggram_equals_musicnns_tensorflow_graph(reference, checkpoint, tmp_path):
    inputs, want, _ = reference
    variables = musicnn_port.load_pretrained(checkpoint, cache_dir=str(tmp_path))
    compared = 0
    for name, x in inputs.items():
        key = f"{checkpoint}/{name}"
        if key not in want:
            assert "vgg" in checkpoint and x.shape[1] != 187  # the VGG takes 187 frames only
            continue
        got, intermediates = _apply(checkpoint, variables, x)
        assert got.shape == want[key].shape == (x.shape[0], 50)
        assert float(np.max(np.abs(got - want[key]))) <= TOL, name
        assert float(np.std(want[key])) > 1e-3  # the tags differ: a real comparison
        if "musicnn" in checkpoint:
            penultimate = np.asarray(intermediates["penultimate"][0])
            np.testing.assert_allclose(penultimate, want[f"{key}/penultimate"], atol=TOL,
                                       rtol=TOL)
        compared += 1
    assert compared == (3 if "musicnn" in checkpoint else 2)


def test_the_pretrained_models_tag_differently(reference, tmp_path):
    """The four checkpoints' taggrams of the same patches differ: each test above
    compares its own weights, not a shared default."""
    _, want, _ = reference
    assert not np.allclose(want["MTT_musicnn/signal"], want["MTT_vgg/signal"], atol=0.01)
    assert not np.allclose(want["MTT_musicnn/signal"], want["MSD_musicnn/signal"], atol=0.01)


def test_the_tag_lists_are_musicnns(tmp_path):
    path = importlib.metadata.distribution("musicnn").locate_file("musicnn/configuration.py")
    assigned = {t.id: ast.literal_eval(node.value)
                for node in ast.parse(open(path).read()).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert musicnn_port.tags("MTT_vgg") == tuple(assigned["MTT_LABELS"])
    assert musicnn_port.tags("MSD_musicnn") == tuple(assigned["MSD_LABELS"])
    musicnn = features.transforms.MUSICNN
    assert (assigned["SR"], assigned["FFT_SIZE"], assigned["FFT_HOP"], assigned["N_MELS"]) == (
        musicnn["sr"], musicnn["n_fft"], musicnn["hop_length"], musicnn["n_mels"])


def test_the_conversion_is_cached_by_digest_and_a_damaged_cache_converted_again(
        tmp_path, monkeypatch):
    first = musicnn_port.load_pretrained("MTT_musicnn", cache_dir=str(tmp_path))
    cached = [p for p in os.listdir(tmp_path) if p.endswith(".flax.msgpack")]
    assert len(cached) == 1 and cached[0].startswith("musicnn-MTT_musicnn.")
    calls = []
    real = tf_bundle.load_bundle
    monkeypatch.setattr(tf_bundle, "load_bundle", lambda p: calls.append(p) or real(p))
    again = musicnn_port.load_pretrained("MTT_musicnn", cache_dir=str(tmp_path))
    assert calls == []  # read from the cache
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    (tmp_path / cached[0]).write_bytes(b"damaged")
    musicnn_port.load_pretrained("MTT_musicnn", cache_dir=str(tmp_path))
    assert len(calls) == 1  # converted again, and the cache rewritten
    assert (tmp_path / cached[0]).stat().st_size > 1000


def test_a_checkpoint_that_does_not_fit_is_refused_naming_the_variable():
    variables = tf_bundle.load_bundle(musicnn_port.checkpoint_prefix("MSD_musicnn"))
    missing = {k: v for k, v in variables.items() if k != "batch_normalization_9/gamma"}
    with pytest.raises(musicnn_port.ConversionError, match="batch_normalization_9/scale"):
        musicnn_port.convert(missing, "musicnn", "dense_1")
    with pytest.raises(musicnn_port.ConversionError, match="'conv2d_9/kernel' has no place"):
        musicnn_port.convert({**variables, "conv2d_9/kernel": np.zeros((3, 3, 1, 4))},
                             "musicnn", "dense_1")
    wrong = {**variables, "conv2d_2/kernel": np.zeros((64, 1, 1, 51), np.float32)}
    with pytest.raises(musicnn_port.ConversionError, match="conv2d_2/kernel' has shape"):
        musicnn_port.convert(wrong, "musicnn", "dense_1")
    with pytest.raises(musicnn_port.ConversionError, match="not a musicnn"):
        musicnn_port.convert(variables, "musicnn_vgg", "dense_9")


def test_the_models_train_on_other_heads():
    model = models.create("musicnn", 10)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 96, 120, 1))
    variables = jax.jit(model.init)(jax.random.PRNGKey(1), x)
    logits, state = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                rngs={"dropout": jax.random.PRNGKey(2)})
    assert logits.shape == (2, 10) and "batch_normalization_9" in state["batch_stats"]
    assert not np.allclose(state["batch_stats"]["batch_normalization_9"]["mean"],
                           variables["batch_stats"]["batch_normalization_9"]["mean"])


def test_loading_the_weights_imports_neither_musicnn_nor_tensorflow(tmp_path):
    code = ("import sys; from jaxgenre.models import musicnn_port; "
            f"musicnn_port.load_pretrained('MSD_vgg', cache_dir={str(tmp_path)!r}); "
            "print(sorted(m for m in ('musicnn', 'tensorflow', 'torch', 'tf_keras') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(HERE))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert any(p.startswith("musicnn-MSD_vgg.") for p in os.listdir(tmp_path))
