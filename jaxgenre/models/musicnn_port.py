"""musicnn's pretrained TF-1 checkpoints → Flax variables for `models.musicnn`.

The checkpoints ship inside musicnn 0.1.0's wheel (`requirements-musicnn.txt`, installed
with --no-deps); jaxgenre imports nothing from that package: it only finds the files
(`importlib.metadata`) and reads them with `tf_bundle`. Because the Flax layers carry
the TF variable scopes as names, the conversion is mechanical: `<scope>/kernel` and
`/bias` go to params (the mid-end's (7, width, 1, 64) kernels lose their unit axis, as
the Flax mid-end is a 1-D convolution), a batch norm's gamma/beta to scale/bias and its
moving mean/variance to `batch_stats`; Adam's slots and beta powers (training state) are
dropped. Every other variable must land somewhere and every Flax variable be filled,
else `ConversionError` names it. As for the ImageNet weights (`torchvision_port`), the
converted variables are cached in torch's hub folder keyed by the checkpoint's digest
(`musicnn-<checkpoint>.<sha256[:16]>.flax.msgpack`), so a changed file converts again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import warnings
from typing import Dict, Mapping, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxgenre import models, strict_json
from jaxgenre.errors import UserError
from jaxgenre.models import tf_bundle, torchvision_port

# checkpoint → (registry name, the Flax name of its tag layer)
CHECKPOINTS = {"MTT_musicnn": ("musicnn", "dense_1"), "MSD_musicnn": ("musicnn", "dense_1"),
               "MTT_vgg": ("musicnn_vgg", "dense"), "MSD_vgg": ("musicnn_vgg", "dense")}
# musicnn/configuration.py's label lists, in the order of the logits.
TAGS = {
    "MTT": ("guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock",
            "fast", "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian",
            "opera", "male", "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet",
            "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
            "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal",
            "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice",
            "choral"),
    "MSD": ("rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance",
            "00s", "alternative rock", "jazz", "beautiful", "metal", "chillout",
            "male vocalists", "classic rock", "soul", "indie rock", "Mellow", "electronica",
            "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues",
            "hard rock", "ambient", "acoustic", "experimental", "female vocalist", "guitar",
            "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
            "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad",
            "House", "happy"),
}
_BN_LEAVES = {"gamma": ("params", "scale"), "beta": ("params", "bias"),
              "moving_mean": ("batch_stats", "mean"), "moving_variance": ("batch_stats", "var")}
_INSTALL = "pip install --no-deps -r requirements-musicnn.txt"


class ConversionError(UserError):
    """Checkpoint variables that do not match the Flax architecture name for name."""


def _known(checkpoint: str) -> Tuple[str, str]:
    if checkpoint not in CHECKPOINTS:
        raise UserError(f"no musicnn checkpoint {checkpoint!r}; there are "
                        f"{', '.join(CHECKPOINTS)}")
    return CHECKPOINTS[checkpoint]


def tags(checkpoint: str) -> Tuple[str, ...]:
    """The tag names of a checkpoint's logits."""
    _known(checkpoint)
    return TAGS[checkpoint[:3]]


def checkpoint_prefix(checkpoint: str) -> str:
    """The TensorBundle prefix of one of musicnn's checkpoints in the installed wheel."""
    _known(checkpoint)
    try:
        dist = importlib.metadata.distribution("musicnn")
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"musicnn's pretrained weights come with the musicnn package, "
                        f"which is not installed: {_INSTALL}") from None
    index = str(dist.locate_file(f"musicnn/{checkpoint}/.index"))
    if not os.path.isfile(index):
        raise UserError(f"the installed musicnn has no '{index}': reinstall it ({_INSTALL})")
    return index[:-len(".index")]


# One example as the models take it: 96 mel bands x musicnn's 187 frames (3 s), 1 channel.
INPUT_SHAPE = (96, 187, 1)


def _template(arch: str, num_classes: int):
    model = models.create(arch, num_classes)
    x = jnp.zeros((1,) + INPUT_SHAPE)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    return {"params": shapes["params"], "batch_stats": shapes["batch_stats"]}


def convert(variables: Mapping[str, np.ndarray], arch: str, head: str) -> Dict[str, Dict]:
    """Checkpoint `{name: array}` → `{'params', 'batch_stats'}` for `models.create(arch)`
    with as many classes as the checkpoint's `head` layer has."""
    if f"{head}/kernel" not in variables:
        raise ConversionError(f"the checkpoint has no '{head}/kernel': not a musicnn {arch}")
    template = _template(arch, int(np.shape(variables[f"{head}/kernel"])[-1]))
    out = {"params": {}, "batch_stats": {}}
    for name, value in variables.items():
        if "/Adam" in name or name in ("beta1_power", "beta2_power"):
            continue  # the optimiser's state, not the model's
        scope, _, leaf = name.rpartition("/")
        target, key = _BN_LEAVES.get(leaf) or ("params", leaf)
        expected = template[target].get(scope, {}).get(key)
        if expected is None:
            raise ConversionError(f"checkpoint variable '{name}' has no place in the Flax "
                                  f"{arch}")
        value = np.asarray(value, np.float32)
        if value.ndim == 4 and len(expected.shape) == 3 and value.shape[2] == 1:
            value = value[:, :, 0, :]  # the mid-end's (7, width, 1, 64) → 1-D (7, width, 64)
        if value.shape != expected.shape:
            raise ConversionError(f"'{name}' has shape {value.shape}; the Flax {arch} expects "
                                  f"{expected.shape} at {target}/{scope}/{key}")
        out[target].setdefault(scope, {})[key] = value
    for target, layers in template.items():
        for scope, leaves in layers.items():
            for key in leaves:
                if key not in out[target].get(scope, {}):
                    raise ConversionError(f"the checkpoint fills nothing for Flax "
                                          f"{target}/{scope}/{key}")
    return out


def _digest(prefix: str) -> str:
    sha = hashlib.sha256()
    for path in (prefix + ".index", tf_bundle.data_file(prefix, 0, 1)):
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()


def _read_cached(path: str, arch: str, head: str) -> Dict:
    """Cached variables checked leaf by leaf against the architecture (else ValueError)."""
    with open(path, "rb") as f:
        variables = flax.serialization.msgpack_restore(f.read())
    template = _template(arch, int(variables["params"][head]["kernel"].shape[-1]))
    torchvision_port.check_tree(variables, template)
    return variables


def load_pretrained(checkpoint: str = "MTT_musicnn", *, cache_dir: Optional[str] = None
                    ) -> Dict[str, Dict]:
    """The Flax variables of one of musicnn's checkpoints ('MTT_musicnn', 'MSD_musicnn',
    'MTT_vgg', 'MSD_vgg'), with its 50-tag head, for `models.create(arch, 50)` where
    `arch` is `CHECKPOINTS[checkpoint][0]`. Converted once per checkpoint digest and
    cached in `cache_dir` (default: torch's hub checkpoints folder, as the ImageNet
    weights); a damaged cache file is converted again."""
    arch, head = _known(checkpoint)
    prefix = checkpoint_prefix(checkpoint)
    try:
        digest = _digest(prefix)
    except OSError as e:
        raise UserError(f"cannot read musicnn checkpoint '{prefix}' ({e}): "
                        f"reinstall musicnn ({_INSTALL})") from None
    cache_dir = cache_dir or torchvision_port.hub_dir()
    cached = os.path.join(cache_dir, f"musicnn-{checkpoint}.{digest[:16]}.flax.msgpack")
    variables = None
    if os.path.isfile(cached):
        try:
            variables = _read_cached(cached, arch, head)
        except Exception:  # damaged or edited: convert again below
            variables = None
    if variables is None:
        variables = convert(tf_bundle.load_bundle(prefix), arch, head)
        try:  # whole or not at all; a cache that cannot be written only costs the speed-up
            strict_json.write_bytes(cached, flax.serialization.msgpack_serialize(variables))
        except OSError as e:
            warnings.warn(f"cannot keep the converted musicnn weights in {cache_dir} "
                          f"({e.strerror or e}); converting them again next time")
    return jax.tree.map(jnp.asarray, variables)
