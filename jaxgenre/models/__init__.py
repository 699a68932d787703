"""The study's three models in Flax Linen, created by name:

    model = jaxgenre.models.create("resnet18", num_classes=10, dtype=jnp.bfloat16)
    variables = model.init(key, x, train=False)     # {'params', 'batch_stats'}
    logits = model.apply(variables, x, train=False)

`train=True` needs `mutable=['batch_stats']` and, for dropout / stochastic depth,
`rngs={'dropout': key}`. Inputs are NHWC float32 images (see `adapter`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict

import flax.linen as nn
import jax.numpy as jnp

from jaxgenre.models.efficientnet_v2 import EfficientNetV2S
from jaxgenre.models.resnet import ResNet18
from jaxgenre.models.spectral_cnn import SpectralCNN

MODELS: Dict[str, Callable[..., nn.Module]] = {
    "spectral_cnn": SpectralCNN,
    "resnet18": ResNet18,
    "efficientnet_v2_s": EfficientNetV2S,
}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def create(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """A model by registry name; `dtype` may be a dtype or 'float32' / 'bfloat16'
    (bfloat16 computes in bfloat16 and keeps float32 parameters)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    if isinstance(kwargs.get("dtype"), str):
        if kwargs["dtype"] not in DTYPES:
            raise ValueError(f"model dtype must be one of {sorted(DTYPES)}, got {kwargs['dtype']!r}")
        kwargs["dtype"] = DTYPES[kwargs["dtype"]]
    return MODELS[name](num_classes=num_classes, **kwargs)
