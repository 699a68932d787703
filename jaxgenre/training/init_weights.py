"""A run's initial weights: ported ImageNet (torchvision), musicnn or PANNs AudioSet
variables with a fresh head, or None for the model's own random initialisation."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import flax
import jax
import jax.numpy as jnp

from jaxgenre import models
from jaxgenre.errors import UserError
from jaxgenre.models import torchvision_port


def initial_variables(config, num_classes: int, key) -> Tuple[Optional[Dict], str, str]:
    """(ported ImageNet variables or None, a note for results.json, a warning or '').
    ImageNet weights are used when `config.model.pretrained` and the model's spec has a
    checkpoint: `config.model.checkpoint` (a path or URL, checked against
    `checkpoint_sha256` if given) or torchvision's file, fetched into torch's hub cache
    with its full sha256 when missing. torchvision's file that cannot be had falls back
    to random initialisation with a warning; a file that is there but wrong, or a
    `checkpoint` that cannot be had, is a `UserError`."""
    name = config.model.name
    spec = models.get_spec(name)
    if config.model.pretrained and spec.tagger_weights:
        return tagger_variables(config.model, num_classes, key), (
            f"musicnn's {config.model.weights}_{spec.tagger_weights} weights, a new head"), ""
    if config.model.pretrained and spec.audioset:
        own = config.model.checkpoint
        return audioset_variables(config.model, num_classes, key), (
            f"PANNs' AudioSet weights ({own or spec.audioset.file}), a new head"), ""
    if not config.model.pretrained or spec.imagenet is None:
        return None, "random initialisation", ""
    own, own_sha256 = config.model.checkpoint, config.model.checkpoint_sha256
    try:
        path = torchvision_port.checkpoint_file(name, own, sha256=own_sha256)
        variables = torchvision_port.load_imagenet(name, num_classes, path if own else None,
                                                   key=key, sha256=own_sha256)
    except FileNotFoundError as e:
        if own:  # weights the user named: no silent fallback
            raise UserError(f"config.model.checkpoint={own!r} cannot be had: {e}") from None
        return (None, f"random initialisation: ImageNet weights not found ({e})",
                f"{e} Training starts from random initialisation instead.")
    return variables, ("ImageNet weights (torchvision)" if not own
                       else f"ImageNet weights ({own})"), ""


def tagger_variables(model_config, num_classes: int, key) -> Dict:
    """musicnn's pretrained variables (`model.weights`: MSD or MTT) with the tagging head
    replaced by a freshly initialised one of `num_classes` outputs."""
    from jaxgenre.models import musicnn_port

    spec = models.get_spec(model_config.name)
    variables = musicnn_port.load_pretrained(f"{model_config.weights}_{spec.tagger_weights}")
    model = models.create(model_config.name, num_classes)
    sample = jnp.zeros((1,) + musicnn_port.INPUT_SHAPE)
    fresh = jax.jit(lambda k: model.init(k, sample, train=False))(jax.random.fold_in(key, 1))
    params = dict(variables["params"])
    for name in spec.head_names():
        params[name] = fresh["params"][name]
    return {"params": params, "batch_stats": variables["batch_stats"]}


def audioset_variables(model_config, num_classes: int, key) -> Dict:
    """PANNs' AudioSet variables (`model.checkpoint`, checked against
    `model.checkpoint_sha256`, else the published file, fetched and checked against its
    md5) with the 527-class head replaced by a fresh one of `num_classes` outputs,
    initialised as the model initialises it. Weights that cannot be had are a
    `UserError`: a probe of an untrained backbone would measure nothing."""
    from jaxgenre.models import panns, panns_port

    try:
        variables = panns_port.load_pretrained(model_config.checkpoint,
                                               sha256=model_config.checkpoint_sha256)
    except FileNotFoundError as e:
        raise UserError(f"{e} Or train CNN14 from random weights: --config.model."
                        f"pretrained=False --config.model.freeze_backbone=False") from None
    width, _ = panns_port.width_and_classes(variables)
    model_width = models.create(model_config.name, num_classes).width
    if width != model_width:
        raise UserError(f"'{model_config.checkpoint}' holds a CNN14 of width {width} "
                        f"({width} maps in its first block); {model_config.name} has width "
                        f"{model_width}: give a checkpoint of the paper's CNN14")
    head = panns.CHECKPOINT.head
    fresh = flax.linen.Dense(num_classes, kernel_init=panns.INIT).init(
        jax.random.fold_in(key, 1), jnp.zeros((1, width * 32)))["params"]
    return {"params": {**variables["params"], head: fresh},
            "batch_stats": variables["batch_stats"]}
