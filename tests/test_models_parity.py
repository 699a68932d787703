"""Flax ResNet-18 / EfficientNetV2-S against torchvision, randomly initialised (no
download here), eval mode, same inputs, float32 at full matmul precision: logits and
every stage's feature map; plus BatchNorm's training-mode statistics update and a
training-mode backward pass of ResNet-18."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxgenre import models
from jaxgenre.models import torchvision_port
from jaxgenre.testing import torch_reference

torchvision = torch_reference.import_torchvision()
torch.set_num_threads(2)
ARCHS = {  # arch: (torchvision constructor, logit tolerance, stage names flax → torch)
    "resnet18": (torchvision.models.resnet18, 1e-4,
                 {"stem": "maxpool", **{f"layer{i}": f"layer{i}" for i in range(1, 5)}}),
    "efficientnet_v2_s": (torchvision.models.efficientnet_v2_s, 1e-3,
                          {f"features_{i}": f"features.{i}" for i in range(8)}),
}


def _torch_model(arch, num_classes=1000, seed=0):
    torch.manual_seed(seed)
    model = ARCHS[arch][0](num_classes=num_classes).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_parameter_counts_equal_torchvision(arch):
    for num_classes in (1000, 10):
        expected = sum(p.numel() for p in ARCHS[arch][0](num_classes=num_classes).parameters())
        model = models.create(arch, num_classes)
        shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                                   jnp.zeros((1, 64, 64, 3))))
        assert sum(x.size for x in jax.tree.leaves(shapes["params"])) == expected


@pytest.mark.parametrize("shape", [(2, 224, 224, 3), (2, 128, 1292, 3)])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_logits_and_stage_outputs_equal_torchvision(arch, shape):
    _, tol, stages = ARCHS[arch]
    reference = _torch_model(arch)
    captured = {}
    for flax_name, torch_name in stages.items():
        reference.get_submodule(torch_name).register_forward_hook(
            lambda m, i, o, name=flax_name: captured.__setitem__(name, o.numpy()))
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    variables = torchvision_port.convert(reference.state_dict(), arch)
    # EfficientNetV2-S's depthwise convolutions both ways: XLA's grouped convolution
    # (GPU/TPU) at 224 x 224, the CPU's shifted copies on whole clips.
    options = ({"cpu_ops": shape[2] == 1292}
               if "cpu_ops" in models.get_spec(arch).options else {})
    model = models.create(arch, 1000, **options)
    with jax.default_matmul_precision("highest"):
        logits, state = jax.jit(lambda v, x: model.apply(v, x, train=False,
                                                         mutable=["intermediates"]))(variables, x)
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=0, atol=tol)
    for name in stages:
        got = np.asarray(state["intermediates"][name][0]).transpose(0, 3, 1, 2)
        ref = captured[name]
        assert got.shape == ref.shape, name
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * max(1.0, np.abs(ref).max()),
                                   err_msg=f"{arch} stage {name}")


def test_training_mode_batchnorm_follows_torch_momentum():
    reference = _torch_model("resnet18")
    variables = torchvision_port.convert(reference.state_dict(), "resnet18")
    x = np.random.default_rng(2).standard_normal((4, 64, 64, 3)).astype(np.float32)
    reference.train()
    with torch.no_grad():
        expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    model = models.create("resnet18", 1000)
    with jax.default_matmul_precision("highest"):
        logits, state = model.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(logits), expected, atol=1e-4)
    torch_stats = reference.state_dict()
    for module in ("bn1", "layer1_0_bn2", "layer4_1_bn2", "layer3_0_downsample_1"):
        key = module.replace("_", ".")
        for ours, theirs in (("mean", "running_mean"), ("var", "running_var")):
            np.testing.assert_allclose(np.asarray(state["batch_stats"][module][ours]),
                                       torch_stats[f"{key}.{theirs}"].numpy(), atol=1e-5,
                                       err_msg=f"{module}.{ours}")


@pytest.mark.parametrize("cpu_ops", [True, False])
def test_training_mode_gradients_equal_torchvision(cpu_ops):
    """One training-mode backward pass of ResNet-18 against torch autograd, with the max
    pool's hand-written gradient (`cpu_ops`, layers.max_pool) and with XLA's own; the
    stem's ReLU zeros give the pool tied windows.

    The input matters: where two values of a pool window lie within rounding of each
    other, or a ReLU input within rounding of zero, float32 rounding decides where a
    gradient goes, and early layers' gradients can move by a few percent (torch's own
    float32 against its float64 does so at batch 4). At this input torch's float32
    and float64 gradients agree to 1e-5 and ours agree with torch's to 1e-5; a pool
    that routed gradients wrongly was off by 85% here."""
    reference = _torch_model("resnet18", num_classes=10).train()
    variables = torchvision_port.convert(reference.state_dict(), "resnet18")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 64, 72, 3)).astype(np.float32)
    weights = rng.standard_normal((8, 10)).astype(np.float32)
    torch_loss = (reference(torch.from_numpy(x.transpose(0, 3, 1, 2)))
                  * torch.from_numpy(weights)).sum()
    torch_loss.backward()
    # torch's gradients in Flax layout: the state dict with every parameter replaced
    # by its gradient, through the same conversion as the weights.
    grad_dict = {**reference.state_dict(),
                 **{name: p.grad for name, p in reference.named_parameters()}}
    expected = torchvision_port.convert(grad_dict, "resnet18")["params"]

    model = models.create("resnet18", 10, cpu_ops=cpu_ops)

    def loss(params):
        logits, _ = model.apply({**variables, "params": params}, x, train=True,
                                mutable=["batch_stats"])
        return jnp.sum(logits * weights)

    with jax.default_matmul_precision("highest"):
        value, grads = jax.jit(jax.value_and_grad(loss))(variables["params"])
    np.testing.assert_allclose(float(value), torch_loss.item(), rtol=0, atol=1e-4)
    assert jax.tree.structure(grads) == jax.tree.structure(expected)
    for (path, got), ref in zip(jax.tree_util.tree_leaves_with_path(grads),
                                jax.tree.leaves(expected)):
        ref = np.asarray(ref)
        np.testing.assert_allclose(np.asarray(got), ref, rtol=0,
                                   atol=1e-3 * np.abs(ref).max(),
                                   err_msg=jax.tree_util.keystr(path))
