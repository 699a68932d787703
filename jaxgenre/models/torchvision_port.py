"""torchvision ImageNet weights → Flax variables, for the models whose spec names an
ImageNet checkpoint (`ModelSpec.imagenet`: file, URL, sha256, head).

Because the Flax layers carry torchvision's module paths as names ('.' → '_'), the
conversion is mechanical: a conv weight OIHW becomes a kernel HWIO, a linear weight is
transposed, a BatchNorm's weight/bias become scale/bias and its running mean/var go to
`batch_stats`. Every key of the state dict must land somewhere and every Flax variable
must be filled: a leftover or missing key is an error that names it.

torch is never imported: `.pth` files are read by `models.pth` (numpy and a restricted
unpickler), and `convert` takes any mapping of arrays (numpy, or torch tensors in tests).
"""

from __future__ import annotations

import glob
import os
import urllib.parse
from typing import Any, Dict, Mapping, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxgenre import models
from jaxgenre.data import download
from jaxgenre.errors import UserError
from jaxgenre.models import pth


def _checkpoint(arch: str):
    spec = models.get_spec(arch)
    if spec.imagenet is None:
        ported = [name for name, s in models.REGISTRY.items() if s.imagenet]
        raise UserError(f"no ImageNet weights for {arch!r}; these models have them: "
                        f"{', '.join(ported)}")
    return spec.imagenet


class ConversionError(UserError):
    """A state dict that does not match the Flax architecture key for key."""


def _numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


def _template(arch: str, num_classes: int):
    model = models.create(arch, num_classes)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                             jnp.zeros((1, 64, 64, 3)), train=False))


def convert(state_dict: Mapping[str, Any], arch: str) -> Dict[str, Dict]:
    """A torchvision `state_dict` → `{'params', 'batch_stats'}` for `models.create(arch)`."""
    head = _checkpoint(arch).head.replace("_", ".") + ".weight"
    if head not in state_dict:
        raise ConversionError(f"state dict has no '{head}': not a torchvision {arch}")
    return convert_state_dict(state_dict, _template(arch, int(state_dict[head].shape[0])),
                              f"torchvision {arch}")


def convert_state_dict(state_dict: Mapping[str, Any], template: Mapping[str, Any],
                       what: str) -> Dict[str, Dict]:
    """A torch `state_dict` → the `{'params', 'batch_stats'}` of `template` (shapes, e.g.
    from `jax.eval_shape` of the model's init), for Flax models whose layers are named
    after the torch module paths ('.' → '_'): a conv weight OIHW becomes a kernel HWIO,
    a linear weight is transposed, a batch norm's weight/bias become scale/bias and its
    running mean/var go to `batch_stats` (its step counter is dropped). A key with no
    place, a shape that differs, or a Flax variable left unfilled is a
    `ConversionError` naming it (`what` names the checkpoint's kind)."""
    params, stats = template["params"], template["batch_stats"]
    out = {"params": {}, "batch_stats": {}}
    for key, value in state_dict.items():
        path, _, leaf = key.rpartition(".")
        module = path.replace(".", "_")
        if leaf == "num_batches_tracked" and module in stats:
            continue  # torch's step counter; flax has no equivalent (momentum is fixed)
        value = _numpy(value)
        if module in stats:
            target, name = {"weight": ("params", "scale"), "bias": ("params", "bias"),
                            "running_mean": ("batch_stats", "mean"),
                            "running_var": ("batch_stats", "var")}.get(leaf, (None, None))
        elif module in params:
            target, name = ("params", {"weight": "kernel", "bias": "bias"}.get(leaf))
            if name == "kernel":
                value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
        else:
            target, name = None, None
        if target is None or name is None or name not in template[target][module]:
            raise ConversionError(f"{what} key '{key}' has no place in the Flax model")
        expected = template[target][module][name].shape
        if value.shape != expected:
            raise ConversionError(f"'{key}' has shape {value.shape} after conversion; the Flax "
                                  f"model expects {expected} at {target}/{module}/{name}")
        out[target].setdefault(module, {})[name] = jnp.asarray(value)
    for target in ("params", "batch_stats"):
        for module, leaves in template[target].items():
            for name in leaves:
                if name not in out[target].get(module, {}):
                    raise ConversionError(f"the state dict fills nothing for Flax "
                                          f"{target}/{module}/{name} ({what} module "
                                          f"'{module.replace('_', '.')}')")
    return out


def hub_dir() -> str:
    """torch's checkpoint cache: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return os.path.join(home, "hub", "checkpoints")


def _read_converted(cached: str, arch: str) -> Dict:
    """The converted variables cached at `cached`, checked against the architecture's own
    tree: a file of another shape (damaged, or edited) raises `ValueError`, and the caller
    converts the checkpoint again, as for an unreadable one."""
    with open(cached, "rb") as f:
        variables = flax.serialization.msgpack_restore(f.read())
    head = _checkpoint(arch).head
    try:
        classes = int(variables["params"][head]["kernel"].shape[-1])
    except (KeyError, TypeError, AttributeError, IndexError):
        raise ValueError(f"no '{head}' kernel") from None
    template = _template(arch, classes)
    check_tree(variables, {"params": template["params"],
                           "batch_stats": template["batch_stats"]})
    return variables


def check_tree(variables, expected) -> None:
    """`variables` read back from a converted-weights cache against `expected` (shapes,
    e.g. from `jax.eval_shape`): the same tree, every leaf a numpy array of the expected
    shape and dtype, else `ValueError` saying where. What every weights port checks its
    cache with before trusting it."""
    want = jax.tree_util.tree_flatten_with_path(expected)[0]
    got = jax.tree_util.tree_flatten_with_path(variables)[0]
    if [p for p, _ in want] != [p for p, _ in got]:
        raise ValueError("its tree differs from the architecture's")
    for (where, w), (_, g) in zip(want, got):
        if not isinstance(g, np.ndarray) or g.shape != w.shape or g.dtype != w.dtype:
            raise ValueError(f"{jax.tree_util.keystr(where)} is "
                             f"{getattr(g, 'shape', type(g).__name__)}, not {w.shape} {w.dtype}")


def _cache_file(path: str, digest: Optional[str]) -> Optional[str]:
    """The converted variables' cache beside `path`, keyed by the checkpoint's sha256;
    without a digest (the file is gone and nothing is pinned), the one cache there is."""
    if digest:
        return f"{path}.{digest[:16]}.flax.msgpack"
    found = sorted(glob.glob(glob.escape(path) + ".*.flax.msgpack"))
    return found[-1] if found else None


# Caps on a weights fetch (no config reaches here): torchvision's files are 45 MB
# (ResNet-18) and 82 MB (EfficientNetV2-S); a user's own for the same architecture is of
# that size too. A server sending more, or too slowly, is cut off (download.fetch).
WEIGHTS_MAX_BYTES = 2 * 2**30
WEIGHTS_DEADLINE_SECONDS = 2 * 3600.0


def checkpoint_file(arch: str, checkpoint: Optional[str] = None, *,
                    sha256: Optional[str] = None, progress: bool = True) -> str:
    """Where the weights for `arch` are, fetching them if needed: `checkpoint` (a path,
    or a URL fetched into torch's hub cache), else torchvision's file in the hub cache,
    fetched from PyTorch's host with its full sha256 verified. A failed fetch is a
    `FileNotFoundError` naming the file, the URL and the fix; a URL naming no file (it
    ends in '/') is a `UserError`."""
    ckpt = _checkpoint(arch)
    if checkpoint and urllib.parse.urlparse(checkpoint).scheme not in ("http", "https"):
        return os.path.abspath(os.path.expanduser(checkpoint))
    url = checkpoint or ckpt.url
    name = os.path.basename(urllib.parse.urlparse(url).path) if checkpoint else ckpt.file
    if name in ("", ".", ".."):
        raise UserError(f"config.model.checkpoint={checkpoint!r} names no file (it ends in "
                        f"'/'); give the URL of the checkpoint file itself, e.g. "
                        f".../resnet18-f37072fd.pth")
    path = os.path.join(hub_dir(), name)
    if os.path.isfile(path) or (not checkpoint and os.path.isfile(_cache_file(path, ckpt.sha256))):
        return path
    asset = download.Asset(name=f"{arch} ImageNet weights", file=name, urls=(url,),
                           sha256=sha256 if checkpoint else ckpt.sha256)
    try:
        return download.fetch(asset, hub_dir(), progress=progress, max_bytes=WEIGHTS_MAX_BYTES,
                              deadline=WEIGHTS_DEADLINE_SECONDS)
    except download.DownloadError as e:
        raise FileNotFoundError(
            f"no torchvision checkpoint for {arch} at '{path}', and fetching it failed "
            f"({e}). Download {url} and put it there (or pass its path), or set "
            f"--config.model.pretrained=False to train from scratch.") from None


def load_imagenet(arch: str, num_classes: int, path: Optional[str] = None, *,
                  key: Optional[jax.Array] = None, sha256: Optional[str] = None
                  ) -> Dict[str, Dict]:
    """ImageNet variables for `arch` with a fresh `num_classes` head.

    Reads torchvision's checkpoint from `path`, or from torch's hub cache, where it must
    have the spec's full sha256 (a file given by `path` is checked against `sha256` when
    one is given: the user's own weights). The digest is verified every time the file is
    converted, and the converted variables are cached beside it keyed by that digest
    (`<file>.<sha256[:16]>.flax.msgpack`), so a changed file is converted again.
    """
    ckpt = _checkpoint(arch)
    expected = (ckpt.sha256 if path is None else sha256)
    expected = expected.lower() if expected else None
    path = path or os.path.join(hub_dir(), ckpt.file)
    digest = download.file_digest(path) if os.path.isfile(path) else expected
    if os.path.isfile(path) and expected and digest != expected:
        whose = "torchvision's" if expected == ckpt.sha256 else "config.model.checkpoint_sha256"
        raise UserError(f"'{path}' has sha256 {digest}, not {whose} {expected}: a damaged or "
                        f"different file; delete it and download {ckpt.url} again")
    cached = _cache_file(path, digest)
    variables = None
    if cached and os.path.isfile(cached):
        try:
            variables = _read_converted(cached, arch)
        except Exception as e:  # damaged: convert the checkpoint again if it is there
            if not os.path.isfile(path):
                raise UserError(f"'{cached}' (converted {arch} weights) cannot be read "
                                f"({type(e).__name__}: {e}); delete it and put {ckpt.url} at "
                                f"'{path}'") from None
    if variables is None:
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"no torchvision checkpoint for {arch} at '{path}'. Download "
                f"{ckpt.url} and put it there (or pass its path), "
                f"or set --config.model.pretrained=False to train from scratch.")
        try:
            state_dict = pth.load_state_dict(path)
        except pth.UnreadableCheckpoint as e:  # truncated download, not a checkpoint, ...
            fix = (f"delete it and download {ckpt.url} again" if path == os.path.join(
                hub_dir(), ckpt.file) else "fix or replace config.model.checkpoint")
            raise UserError(f"{e}; {fix}") from None
        variables = convert(state_dict, arch)
        with open(_cache_file(path, digest), "wb") as f:
            f.write(flax.serialization.msgpack_serialize(jax.tree.map(np.asarray, variables)))
    variables = jax.tree.map(jnp.asarray, variables)
    return replace_head(variables, arch, num_classes,
                        jax.random.PRNGKey(0) if key is None else key)


def replace_head(variables: Dict, arch: str, num_classes: int, key: jax.Array) -> Dict:
    """Swaps the classifier for a freshly initialised `num_classes` one (Flax's default
    Dense initialisers, as `models.create(arch, num_classes).init` would give)."""
    head = _checkpoint(arch).head
    in_features = variables["params"][head]["kernel"].shape[0]
    fresh = flax.linen.Dense(num_classes).init(key, jnp.zeros((1, in_features)))["params"]
    params = dict(variables["params"])
    params[head] = fresh
    return {"params": params, "batch_stats": variables["batch_stats"]}
