"""What `jaxgenre.embed` runs audio through: an `Embedder` (a model, its feature, its
window length, its tag names and a batched forward pass), from a trained run's best
checkpoint (`from_run`) or from pretrained weights by `--model` name (`PRETRAINED`:
musicnn's four taggers, PANNs' CNN14). Each model sows its penultimate activations as
'embedding', which is what is read."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from typing import Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxgenre import errors, models
from jaxgenre.features import FeatureSpec, transforms
from jaxgenre.training import weight_average

# --model's names → a function building that pretrained embedder (filled below: musicnn's
# taggers musicnn_msd, musicnn_mtt, vgg_msd, vgg_mtt, and PANNs' panns_cnn14).
PRETRAINED: Dict[str, Callable[[], "Embedder"]] = {}


@dataclasses.dataclass(frozen=True)
class Embedder:
    """A model ready to embed windows: `forward(windows)` maps a batch of feature windows
    (batch, *feature.example_shape(window_frames)) to (embeddings (batch, D), tag
    probabilities (batch, len(tag_names)))."""
    name: str
    feature: FeatureSpec
    window_frames: int
    forward: Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]
    tag_names: Tuple[str, ...]
    batch_size: int = 32

    def identity(self, max_seconds: float) -> str:
        """What a kept partial result must have been made by to be reused: this model
        (for a run, its restored step), feature, windows and `--max_seconds`."""
        text = repr((self.name, self.feature.identity(), self.feature.sr,
                     self.feature.hop_length, self.window_frames, self.tag_names,
                     float(max_seconds)))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def from_run(workdir: str) -> Embedder:
    """A trained run's best checkpoint: its model's penultimate activations (the
    'embedding' each model sows) and its class probabilities, on its own segments."""
    from jaxgenre.predict import Predictor

    p = Predictor(workdir)
    params = weight_average.evaluation_params(p.state.params, p.state.opt_state)
    variables = {"params": params, "batch_stats": p.state.batch_stats}

    @jax.jit
    def forward(variables, windows):
        logits, sown = p.model.apply(variables, p.adapt(windows), train=False,
                                     mutable=["intermediates"])
        return (sown["intermediates"]["embedding"][0].astype(jnp.float32),
                jax.nn.softmax(logits.astype(jnp.float32), axis=-1))

    try:  # a model that sows no 'embedding' is one this command cannot read
        jax.eval_shape(forward, variables,
                       jnp.zeros((1,) + p.feature.example_shape(p.segment_frames)))
    except KeyError:
        raise errors.UserError(f"the model of {workdir} ({p.config.model.name}) gives no "
                               f"embedding to read") from None
    step = int(jax.device_get(p.state.step))
    return Embedder(name=f"run:{os.path.abspath(workdir)}@step{step}", feature=p.feature,
                    window_frames=int(p.segment_frames),
                    forward=functools.partial(_run_forward, forward, variables),
                    tag_names=tuple(p.class_names), batch_size=p.batch_size)


def _run_forward(forward, variables, windows):
    return tuple(np.asarray(a) for a in forward(variables, jnp.asarray(windows)))


def from_tagger(checkpoint: str, batch_size: int = 32) -> Embedder:
    """One of musicnn's pretrained taggers ('MSD_musicnn', 'MTT_musicnn', 'MSD_vgg',
    'MTT_vgg'): its penultimate layer (musicnn; 200-d) or its last pool flattened (VGG;
    the 'embedding' both sow)
    as the embedding, its 50 tags' sigmoid as the taggram, musicnn's front end and its
    extractor's 3 s windows (187 frames, back to back)."""
    from jaxgenre.models import musicnn_port

    arch, _ = musicnn_port.CHECKPOINTS[checkpoint]
    model = models.create(arch, len(musicnn_port.tags(checkpoint)))
    return Embedder(name=checkpoint, feature=_fixed_front_end("musicnn"),
                    window_frames=musicnn_port.INPUT_SHAPE[1],
                    forward=_tagger_forward(model, musicnn_port.load_pretrained(checkpoint)),
                    tag_names=musicnn_port.tags(checkpoint), batch_size=batch_size)


def from_panns(batch_size: int = 8, checkpoint: Optional[str] = None,
               sha256: Optional[str] = None) -> Embedder:
    """PANNs' CNN14 pretrained on AudioSet (`panns_port.load_pretrained`: the published
    file, fetched and md5-checked, or `checkpoint`, checked against `sha256` when
    given): its 2048-d `fc1` activations as the embedding, its classes' sigmoid as the
    taggram, PANNs' front end, 10 s windows back to back (the clip length it was trained
    on). The tags are named by their AudioSet index ('audioset_000' ... 'audioset_526',
    the rows of AudioSet's class_labels_indices.csv, which is not shipped here)."""
    from jaxgenre.models import panns_port

    try:
        variables = panns_port.load_pretrained(checkpoint, sha256=sha256)
        name = "panns_cnn14"
        if checkpoint:  # another file is another model: kept partial results must differ
            stat = os.stat(checkpoint)
            name += f":{os.path.abspath(checkpoint)}:{stat.st_size}:{stat.st_mtime_ns}"
    except FileNotFoundError as e:
        raise errors.UserError(str(e)) from None
    width, classes = panns_port.width_and_classes(variables)
    feature = _fixed_front_end("panns")
    return Embedder(name=name, feature=feature, window_frames=feature.frames(10.0),
                    forward=_tagger_forward(models.create("panns_cnn14", classes,
                                                          width=width), variables),
                    tag_names=tuple(f"audioset_{i:03d}" for i in range(classes)),
                    batch_size=batch_size)


def _fixed_front_end(kind: str) -> FeatureSpec:
    front = transforms.FIXED_FRONT_ENDS[kind]
    return FeatureSpec.from_config({"kind": kind, "sr": front["sr"],
                                    "hop_length": front["hop_length"]})


def _tagger_forward(model, variables):
    """A pretrained tagger's `Embedder.forward`: its sown 'embedding' and the sigmoid of
    its logits for a batch of feature windows."""
    @jax.jit
    def forward(variables, windows):
        logits, sown = model.apply(variables, windows[..., None], train=False,
                                   mutable=["intermediates"])
        emb = sown["intermediates"]["embedding"][0]
        return emb.astype(jnp.float32), jax.nn.sigmoid(logits.astype(jnp.float32))

    return functools.partial(_run_forward, forward, variables)


PRETRAINED.update({f"{arch}_{data.lower()}": functools.partial(from_tagger, f"{data}_{arch}")
                   for arch in ("musicnn", "vgg") for data in ("MSD", "MTT")})
PRETRAINED["panns_cnn14"] = from_panns
