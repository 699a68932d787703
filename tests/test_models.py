"""The model registry, SpectralCNN, weight conversion errors, ImageNet loading from a
checkpoint file, fine-tuning, mixed precision, stochastic depth, the input adapter."""

import glob
import hashlib
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from configs import base
from jaxgenre import models
from jaxgenre.models import adapter, cpu_ops, torchvision_port
from jaxgenre.testing import torch_reference

torchvision = torch_reference.import_torchvision()
KEY = jax.random.PRNGKey(0)


def test_registry_builds_every_model_and_rejects_unknown_names():
    inputs = {3: jnp.zeros((2, 64, 96, 3)), 2: jnp.zeros((2, 600, 1))}  # by spec.input_rank
    for name, spec in models.REGISTRY.items():
        # the pretrained front ends' models take their bands only: musicnn's 96 (the VGG
        # its 187 frames), PANNs' 64
        x = {("musicnn",): jnp.zeros((2, 96, 187, 1)), ("panns",): jnp.zeros((2, 64, 96, 1))
             }.get(spec.feature_kinds, inputs[spec.input_rank])
        model = models.create(name, 10)
        variables = jax.eval_shape(model.init, KEY, x)  # shapes only: no compile needed
        assert set(variables) == {"params", "batch_stats"}
        assert jax.eval_shape(model.apply, variables, x).shape == (2, 10)
    with pytest.raises(ValueError, match="unknown model 'vgg16'"):
        models.create("vgg16", 10)
    with pytest.raises(ValueError, match="model dtype"):
        models.create("resnet18", 10, dtype="float16")


def test_spectral_cnn_takes_segments_and_whole_clips():
    model = models.create("spectral_cnn", 10)
    variables = jax.jit(model.init)(KEY, jnp.zeros((1, 128, 129, 1)))
    for shape in ((3, 128, 129, 1), (2, 128, 1292, 1), (2, 20, 1292, 1)):
        assert jax.jit(model.apply)(variables, jnp.ones(shape)).shape == (shape[0], 10)
    n_params = sum(x.size for x in jax.tree.leaves(variables["params"]))
    # conv 3x3 (+bias-free) and BN per block, then 256 → 256 → 128 → 10 dense layers.
    widths, expected, c_in = (32, 64, 128, 256, 256), 0, 1
    for w in widths:
        expected += 9 * c_in * w + 2 * w
        c_in = w
    expected += 256 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    assert n_params == expected


@pytest.mark.slow  # compiles the full EfficientNetV2-S twice, ~23 s
def test_dropout_and_stochastic_depth_only_in_training():
    model = models.create("efficientnet_v2_s", 10)
    x = jax.random.normal(KEY, (2, 64, 64, 3))
    torch.manual_seed(0)  # converted weights: cheaper than compiling model.init
    variables = torchvision_port.convert(
        torchvision.models.efficientnet_v2_s(num_classes=10).state_dict(), "efficientnet_v2_s")
    run = jax.jit(lambda k: model.apply(variables, x, train=True, rngs={"dropout": k},
                                        mutable=["batch_stats"])[0])
    assert not np.allclose(run(jax.random.PRNGKey(1)), run(jax.random.PRNGKey(2)))
    evaluate = jax.jit(lambda: model.apply(variables, x))
    np.testing.assert_array_equal(evaluate(), evaluate())


def test_bfloat16_computes_in_bfloat16_with_float32_params():
    """Every convolution and matmul takes bfloat16 operands (read off the jaxpr), the
    parameters and logits stay float32, and the logits are float32's to bfloat16's
    precision: bfloat16 keeps 8 significant bits (unit roundoff u = 2^-8), each of the
    18 layers on ResNet-18's longest path rounds its inputs and weights once, and
    independent roundings add up like a random walk, so |Δ| ≤ √18 · u · max|logit|
    (0.0166 of the largest logit). Measured: 0.0060 of it here, at most 0.0084 over
    three input seeds (the old bar was 0.1). The top class is the same wherever
    float32's top-2 margin exceeds twice that bound."""
    model = models.create("resnet18", 10, dtype="bfloat16")
    x = jax.random.normal(KEY, (8, 64, 64, 3))
    variables = jax.jit(model.init)(KEY, x)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
    products = [eqn for eqn in jax.make_jaxpr(model.apply)(variables, x).eqns
                if eqn.primitive.name in ("conv_general_dilated", "dot_general")]
    assert len(products) == 21  # 17 + 3 shortcut convolutions and the head
    assert {v.aval.dtype for eqn in products for v in eqn.invars} == {jnp.dtype(jnp.bfloat16)}
    logits = jax.jit(model.apply)(variables, x)
    reference = np.asarray(jax.jit(models.create("resnet18", 10).apply)(variables, x))
    assert logits.dtype == jnp.float32
    bound = np.sqrt(18) * 2.0 ** -8 * np.abs(reference).max()
    error = np.abs(np.asarray(logits) - reference)
    assert 0 < error.max() <= bound, (error.max(), bound)
    top2 = np.sort(reference, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * bound
    assert clear.sum() >= 4  # most rows are clear-cut; those must agree
    np.testing.assert_array_equal(np.asarray(logits).argmax(1)[clear], reference.argmax(1)[clear])


def test_conversion_names_a_leftover_missing_or_misshapen_key():
    state = torchvision.models.resnet18().state_dict()
    extra = dict(state, **{"layer5.0.conv1.weight": torch.zeros(1)})
    with pytest.raises(torchvision_port.ConversionError, match="'layer5.0.conv1.weight'"):
        torchvision_port.convert(extra, "resnet18")
    missing = {k: v for k, v in state.items() if k != "layer2.1.bn1.running_var"}
    with pytest.raises(torchvision_port.ConversionError, match="layer2_1_bn1/var"):
        torchvision_port.convert(missing, "resnet18")
    bad = dict(state, **{"layer1.0.conv1.weight": torch.zeros(64, 64, 5, 5)})
    with pytest.raises(torchvision_port.ConversionError, match="layer1.0.conv1.weight.*shape"):
        torchvision_port.convert(bad, "resnet18")
    with pytest.raises(torchvision_port.ConversionError, match="not a torchvision"):
        torchvision_port.convert(state, "efficientnet_v2_s")


def test_load_imagenet_reads_a_checkpoint_caches_it_and_replaces_the_head(tmp_path,
                                                                          monkeypatch):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    path = str(tmp_path / models.get_spec("resnet18").imagenet.file)
    torch.save(reference.state_dict(), path)
    variables = torchvision_port.load_imagenet("resnet18", 10, path)
    assert variables["params"]["fc"]["kernel"].shape == (512, 10)
    np.testing.assert_allclose(variables["params"]["layer3_1_conv2"]["kernel"],
                               reference.layer3[1].conv2.weight.detach().numpy()
                               .transpose(2, 3, 1, 0))
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert os.path.isfile(f"{path}.{digest[:16]}.flax.msgpack")  # keyed by the file's digest
    os.remove(path)  # the converted cache alone is enough now
    again = torchvision_port.load_imagenet("resnet18", 10, path)
    np.testing.assert_array_equal(again["params"]["layer3_1_conv2"]["kernel"],
                                  variables["params"]["layer3_1_conv2"]["kernel"])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth.*download.pytorch.org"):
        torchvision_port.load_imagenet("resnet18", 10)


def test_a_damaged_imagenet_checkpoint_is_named_with_the_fix(tmp_path, monkeypatch):
    torch.manual_seed(0)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    os.makedirs(torchvision_port.hub_dir())
    path = os.path.join(torchvision_port.hub_dir(), models.get_spec("resnet18").imagenet.file)
    with open(path, "wb") as f:  # a download cut short, in torch's hub cache
        f.write(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="resnet18-f37072fd.pth' is not a readable torchvision "
                                         "checkpoint.*download https://download.pytorch.org"):
        torchvision_port.load_imagenet("resnet18", 10, path)
    # The same bytes as the user's own weights (config.model.checkpoint): that is the fix.
    own = str(tmp_path / "mine.pth")
    shutil.copy(path, own)
    with pytest.raises(ValueError, match="mine.pth' is not a readable torchvision checkpoint"
                                         ".*fix or replace config.model.checkpoint"):
        torchvision_port.load_imagenet("resnet18", 10, own)
    # A damaged converted cache is converted again from the checkpoint beside it ...
    torch.save(torchvision.models.resnet18().state_dict(), path)
    expected = torchvision_port.load_imagenet("resnet18", 10, path)
    cache = glob.glob(path + ".*.flax.msgpack")[0]
    with open(cache, "wb") as f:
        f.write(b"\x00 not msgpack")
    again = torchvision_port.load_imagenet("resnet18", 10, path)
    np.testing.assert_array_equal(again["params"]["layer1_0_conv1"]["kernel"],
                                  expected["params"]["layer1_0_conv1"]["kernel"])
    # ... and, with no checkpoint left, is named with the fix.
    with open(cache, "wb") as f:
        f.write(b"\x00 not msgpack")
    os.remove(path)
    with pytest.raises(ValueError, match="flax.msgpack' \\(converted resnet18 weights\\) "
                                         "cannot be read"):
        torchvision_port.load_imagenet("resnet18", 10, path)


def test_a_converted_model_fine_tunes():
    torch.manual_seed(0)
    variables = torchvision_port.replace_head(
        torchvision_port.convert(torchvision.models.resnet18().state_dict(), "resnet18"),
        "resnet18", 4, KEY)
    model = models.create("resnet18", 4)
    x = jax.random.normal(jax.random.PRNGKey(1), (8, 64, 64, 3))
    labels = jnp.arange(8) % 4
    tx = optax.adam(1e-3)
    opt_state = tx.init(variables["params"])

    @jax.jit
    def step(params, stats, opt_state):
        def loss_fn(p):
            logits, new = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                      mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), new
        (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state)
        return optax.apply_updates(params, updates), new["batch_stats"], opt_state, loss

    params, stats = variables["params"], variables["batch_stats"]
    losses = []
    for _ in range(6):
        params, stats, opt_state, loss = step(params, stats, opt_state)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses


def test_adapter_shapes_and_normalisations():
    feats = jax.random.normal(KEY, (2, 128, 300)) * 20 - 40
    one = adapter.adapt(feats)
    assert one.shape == (2, 128, 300, 1)
    np.testing.assert_allclose(one.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(one.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    three = adapter.adapt(feats, input_size=(224, 224), channels=3)
    assert three.shape == (2, 224, 224, 3)
    np.testing.assert_array_equal(three[..., 0], three[..., 2])
    net = adapter.adapt(feats, channels=3, normalisation="imagenet")
    lowest = (0.0 - np.asarray(adapter.IMAGENET_MEAN)) / np.asarray(adapter.IMAGENET_STD)
    highest = (1.0 - np.asarray(adapter.IMAGENET_MEAN)) / np.asarray(adapter.IMAGENET_STD)
    np.testing.assert_allclose(net.min(axis=(0, 1, 2)), lowest, atol=1e-5)
    np.testing.assert_allclose(net.max(axis=(0, 1, 2)), highest, atol=1e-5)
    assert not np.isnan(np.asarray(adapter.adapt(jnp.zeros((1, 8, 8))))).any()
    with pytest.raises(ValueError, match="channels=3"):
        adapter.adapt(feats, normalisation="imagenet")


@pytest.mark.parametrize("stride", [1, 2])
def test_cpu_depthwise_conv_equals_a_grouped_lax_conv_with_gradients(stride):
    """cpu_ops.DepthwiseConv (shifted multiply-adds, used on CPU) against flax's grouped
    nn.Conv: same initial kernel, same output and same gradients, odd and even sizes."""
    import flax.linen as nn

    from jaxgenre.models import layers

    class Grouped(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Conv(24, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)),
                           feature_group_count=24, use_bias=False, name="dw")(x)

    class Shifted(nn.Module):
        @nn.compact
        def __call__(self, x):
            return cpu_ops.DepthwiseConv(3, stride=stride, padding=1, name="dw")(x)

    for shape in ((2, 17, 20, 24), (2, 16, 16, 24)):
        x = jax.random.normal(KEY, shape)
        v_grouped, v_shifted = Grouped().init(KEY, x), Shifted().init(KEY, x)
        jax.tree.map(np.testing.assert_array_equal, v_grouped, v_shifted)
        loss = lambda module: lambda v, x: jnp.sum(jnp.sin(module.apply(v, x)))
        for a, b in zip(jax.grad(loss(Grouped()), (0, 1))(v_grouped, x),
                        jax.grad(loss(Shifted()), (0, 1))(v_grouped, x)):
            jax.tree.map(lambda p, q: np.testing.assert_allclose(p, q, atol=1e-4), a, b)
        np.testing.assert_allclose(Shifted().apply(v_grouped, x), Grouped().apply(v_grouped, x),
                                   atol=1e-5)


@pytest.mark.parametrize("window,stride,padding,shape", [
    (3, 2, 1, (2, 9, 10, 3)),   # ResNet-18's stem pool, odd and even sizes
    (3, 2, 1, (2, 8, 8, 2)),
    (2, 2, 0, (2, 8, 7, 4)),    # SpectralCNN's pool, a ragged edge dropped
])
@pytest.mark.parametrize("cpu_ops", [True, False])
def test_max_pool_and_its_gradient_equal_torch_with_ties(window, stride, padding, shape,
                                                         cpu_ops):
    """layers.max_pool against torch.nn.functional.max_pool2d, both ways (the CPU's
    written-out gradient and XLA's own): same output, and the gradient goes to the same
    (first) maximum where a window holds several — ReLU outputs are full of tied zeros,
    and a block of equal positive values is added."""
    from jaxgenre.models import layers

    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
    x[0, :3, :3, 0] = 1.0
    y, vjp = jax.vjp(lambda a: layers.max_pool(a, window, stride=stride, padding=padding,
                                               cpu_ops=cpu_ops), jnp.asarray(x))
    g = rng.standard_normal(y.shape).astype(np.float32)
    (dx,) = vjp(jnp.asarray(g))

    x_t = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_(True)
    y_t = torch.nn.functional.max_pool2d(x_t, window, stride, padding)
    y_t.backward(torch.tensor(g).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(np.asarray(y), y_t.detach().permute(0, 2, 3, 1).numpy())
    np.testing.assert_allclose(np.asarray(dx), x_t.grad.permute(0, 2, 3, 1).numpy(),
                               atol=1e-6)
    assert np.count_nonzero(np.asarray(dx)) == np.count_nonzero(x_t.grad.numpy())


def test_every_model_with_cpu_ops_declares_the_switch():
    """A model whose module has a `cpu_ops` field must list it in its spec's options, or
    `model.depthwise` would silently stop reaching it (ResNet-18 once lost its CPU
    max-pool gradient that way, and the README's main command its figures)."""
    import dataclasses

    for name, spec in models.REGISTRY.items():
        fields = {f.name for f in dataclasses.fields(spec.module)}
        assert ("cpu_ops" in fields) == ("cpu_ops" in spec.options), name
        if "cpu_ops" in fields:
            config = base.get_config()
            config.model.update(name=name, depthwise="shifted")
            assert models.constructor_options(config.model)["cpu_ops"] is True
