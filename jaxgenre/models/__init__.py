"""The models, by registry name, and their specs:

    spec = jaxgenre.models.get_spec("resnet18")        # what the rest of the code needs
    model = jaxgenre.models.create("resnet18", num_classes=10, dtype="bfloat16")
    variables = model.init(key, x, train=False)     # {'params', 'batch_stats'}
    logits = model.apply(variables, x, train=False)

`train=True` needs `mutable=['batch_stats']` and, for dropout / stochastic depth,
`rngs={'dropout': key}`. Inputs are NHWC float32 images (see `adapter`). Each model
module declares its `SPEC` (`spec.ModelSpec`); adding a model is a new module and one
line in `REGISTRY`.
"""

from __future__ import annotations

from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgenre.errors import UserError
from jaxgenre.models import efficientnet_v2, musicnn, panns, resnet, sample_cnn, spectral_cnn
from jaxgenre.models.spec import ModelSpec

REGISTRY: Dict[str, ModelSpec] = {spec.name: spec for spec in (
    spectral_cnn.SPEC,
    resnet.SPEC,
    efficientnet_v2.SPEC,
    sample_cnn.SPEC,
    musicnn.SPEC,
    musicnn.VGG_SPEC,
    panns.SPEC,
)}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class UnknownModel(UserError):
    """A model name that is not in the registry."""


def get_spec(name: str) -> ModelSpec:
    """The spec registered as `name`, or an error listing the registered names."""
    if name not in REGISTRY:
        raise UnknownModel(f"unknown model {name!r}: config.model.name must be one of "
                           f"{', '.join(REGISTRY)}")
    return REGISTRY[name]


def constructor_options(model_config) -> Dict[str, Any]:
    """The constructor options `config.model` asks for: its dtype, and for models with
    operations written out for XLA's CPU backend (`models.cpu_ops`: depthwise
    convolutions, max-pool gradients) whether they use them — the one switch
    `model.depthwise`: 'shifted' yes, 'xla' no, 'auto' on the CPU only (2.5x faster
    EfficientNetV2-S training there). Training, predict and the benchmarks build their
    models with these."""
    options: Dict[str, Any] = {"dtype": model_config.dtype}
    if "freeze_backbone" in get_spec(model_config.name).options:
        options["freeze_backbone"] = model_config.freeze_backbone
    if "cpu_ops" in get_spec(model_config.name).options:
        choice = model_config.depthwise
        options["cpu_ops"] = (choice == "shifted"
                              or (choice == "auto" and jax.default_backend() == "cpu"))
    return options


def optimizer_options(model_config) -> Dict[str, Any]:
    """What `steps.create_optimizer` needs to know of the model: its head's parameter
    groups and whether the backbone is frozen (`model.freeze_backbone`)."""
    return {"head": get_spec(model_config.name).head_names(),
            "freeze_backbone": model_config.freeze_backbone}


def create(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """A model by registry name; `dtype` may be a dtype or 'float32' / 'bfloat16'
    (bfloat16 computes in bfloat16 and keeps float32 parameters). Other keywords are
    the model's own fields (`spec.options`, e.g. `cpu_ops`)."""
    spec = get_spec(name)
    if isinstance(kwargs.get("dtype"), str):
        if kwargs["dtype"] not in DTYPES:
            raise UserError(f"model dtype (config.model.dtype) must be one of {', '.join(DTYPES)}, "
                            f"got {kwargs['dtype']!r}")
        kwargs["dtype"] = DTYPES[kwargs["dtype"]]
    return spec.module(num_classes=num_classes, **kwargs)
