"""PANNs' AudioSet checkpoint (`panns.CHECKPOINT`) → Flax variables for `models.panns`.

The `.pth` file is read without torch (`models.pth`; the state dict is its 'model'
entry) and converted as the torchvision weights are (`torchvision_port.
convert_state_dict`: the Flax layers carry the checkpoint's module paths as names). The
checkpoint also holds PANNs' front end as fixed weights — the STFT as two convolutions
(`spectrogram_extractor.stft.conv_real/conv_imag`: Hann-windowed cosines and minus
sines) and the mel filterbank (`logmel_extractor.melW`) — which jaxgenre computes as the
'panns' feature instead: they are compared with that feature's own window, DFT and
Slaney filterbank, and a checkpoint trained on another front end (PANNs' 16 kHz or
8 kHz CNN14, say) is refused, since jaxgenre's 'panns' feature would not be its input.

Where the weights come from: `path` (a user's own file, checked against their sha256
when given), else `Cnn14_mAP=0.431.pth` in torch's hub folder, fetched from Zenodo when
missing and checked against the md5 and size Zenodo publishes. The converted variables
are cached beside the file, keyed by its md5 (`<file>.<md5[:16]>.flax.msgpack`), so a
changed file converts again and the 327 MB file may be deleted once converted.
"""

from __future__ import annotations

import os
import warnings
from typing import Dict, Mapping, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from jaxgenre import models, strict_json
from jaxgenre.data import download
from jaxgenre.errors import UserError
from jaxgenre.features import filters, transforms
from jaxgenre.models import pth, torchvision_port
from jaxgenre.models.panns import CHECKPOINT, MIN_FRAMES, N_MELS

ARCH = "panns_cnn14"
# The front end's weights inside the checkpoint, which jaxgenre computes itself.
FRONT_END = ("spectrogram_extractor.stft.conv_real.weight",
             "spectrogram_extractor.stft.conv_imag.weight", "logmel_extractor.melW")
_TOLERANCE = 1e-5  # the checkpoint's float32 against float64 here


class ConversionError(UserError):
    """A checkpoint that is not PANNs' CNN14 on PANNs' 32 kHz front end."""


def expected_front_end() -> Dict[str, np.ndarray]:
    """The front-end weights a 32 kHz PANNs checkpoint holds, computed here: the periodic
    Hann window times the DFT's cosines (real part) and minus sines (imaginary part) as
    `(n_fft // 2 + 1, 1, n_fft)` kernels, and the Slaney mel filterbank transposed."""
    p = transforms.PANNS
    n_fft = p["n_fft"]
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    angle = 2 * np.pi * np.outer(np.arange(n_fft // 2 + 1), np.arange(n_fft)) / n_fft
    mel = np.asarray(filters.mel_filterbank(sr=p["sr"], n_fft=n_fft, n_mels=p["n_mels"],
                                            fmin=p["fmin"], fmax=p["fmax"]))
    return {FRONT_END[0]: (np.cos(angle) * window)[:, None, :],
            FRONT_END[1]: (-np.sin(angle) * window)[:, None, :],
            FRONT_END[2]: mel.T}


def _check_front_end(state_dict: Mapping[str, np.ndarray]) -> None:
    for key, want in expected_front_end().items():
        if key not in state_dict:
            continue  # a state dict saved without the front end (a user's own)
        got = np.asarray(state_dict[key])
        # a half-precision copy holds them rounded: allow a few of its steps
        tolerance = max(_TOLERANCE, 4 * float(np.finfo(got.dtype).eps)
                        if np.issubdtype(got.dtype, np.floating) else _TOLERANCE)
        if got.shape != want.shape or not np.allclose(got, want, rtol=0, atol=tolerance):
            detail = (f"shape {got.shape}, not {want.shape}" if got.shape != want.shape
                      else f"differs by up to {np.max(np.abs(got - want)):.3g}")
            raise ConversionError(
                f"the checkpoint's '{key}' ({detail}) is not PANNs' 32 kHz front end "
                f"(sr 32000, n_fft 1024, 64 mel bands 50-14000 Hz), which jaxgenre's "
                f"'panns' feature computes: use the 32 kHz CNN14 (e.g. {CHECKPOINT.file})")


def _template(num_classes: int, width: int):
    model = models.create(ARCH, num_classes, width=width)
    x = jnp.zeros((1, N_MELS, MIN_FRAMES, 1))
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
    return {"params": shapes["params"], "batch_stats": shapes["batch_stats"]}


def convert(state_dict: Mapping[str, np.ndarray]) -> Dict[str, Dict]:
    """PANNs' CNN14 state dict → `{'params', 'batch_stats'}` for `models.create(
    'panns_cnn14', classes, width=width)`, classes and width read from the state dict
    (`fc_audioset`'s rows; `conv_block1.conv1`'s maps)."""
    for key, rank in (("fc_audioset.weight", 2), ("conv_block1.conv1.weight", 4)):
        if key not in state_dict:
            raise ConversionError(f"the state dict has no '{key}': not PANNs' CNN14")
        shape = np.shape(state_dict[key])
        if len(shape) != rank or min(shape) < 1:
            raise ConversionError(f"'{key}' has shape {shape}, not {rank} axes of at least 1: "
                                  f"not PANNs' CNN14")
    _check_front_end(state_dict)
    network = {k: v for k, v in state_dict.items() if k not in FRONT_END}
    classes = int(np.shape(state_dict["fc_audioset.weight"])[0])
    width = int(np.shape(state_dict["conv_block1.conv1.weight"])[0])
    return torchvision_port.convert_state_dict(network, _template(classes, width),
                                               "PANNs CNN14")


def width_and_classes(variables: Mapping) -> tuple:
    """(width, classes) of converted variables, as `models.create` needs them."""
    return (int(variables["params"]["conv_block1_conv1"]["kernel"].shape[-1]),
            int(variables["params"][CHECKPOINT.head]["kernel"].shape[-1]))


def _read_cached(path: str) -> Dict:
    """Cached variables checked leaf by leaf against the architecture (else ValueError)."""
    with open(path, "rb") as f:
        variables = flax.serialization.msgpack_restore(f.read())
    try:
        template = _template(*reversed(width_and_classes(variables)))
    except (KeyError, TypeError, AttributeError, IndexError):
        raise ValueError("not PANNs' CNN14 variables") from None
    torchvision_port.check_tree(variables, template)
    return variables


def checkpoint_file(*, progress: bool = True) -> str:
    """PANNs' published file in torch's hub folder, fetched from Zenodo if missing (its md5
    and size checked). A failed fetch is a `FileNotFoundError` saying what to do."""
    path = os.path.join(torchvision_port.hub_dir(), CHECKPOINT.file)
    if os.path.isfile(path) or os.path.isfile(f"{path}.{CHECKPOINT.md5[:16]}.flax.msgpack"):
        return path
    asset = download.Asset(name="PANNs CNN14 AudioSet weights", file=CHECKPOINT.file,
                           urls=(CHECKPOINT.url,), md5=CHECKPOINT.md5, size=CHECKPOINT.size)
    try:
        return download.fetch(asset, torchvision_port.hub_dir(), progress=progress,
                              max_bytes=torchvision_port.WEIGHTS_MAX_BYTES,
                              deadline=torchvision_port.WEIGHTS_DEADLINE_SECONDS)
    except download.DownloadError as e:
        raise FileNotFoundError(
            f"no PANNs checkpoint at '{path}', and fetching it failed ({e}). Download "
            f"{CHECKPOINT.url} by hand (Zenodo record {CHECKPOINT.record}; md5 "
            f"{CHECKPOINT.md5}, {CHECKPOINT.size} bytes) and put it at '{path}'.") from None


def load_pretrained(path: Optional[str] = None, *, sha256: Optional[str] = None,
                    progress: bool = True) -> Dict[str, Dict]:
    """PANNs' CNN14 variables with its AudioSet head (527 classes), for
    `models.create('panns_cnn14', 527)`: from `path` (checked against `sha256` when
    given), else the published file (`checkpoint_file`, md5 and size checked)."""
    own = path is not None
    path = os.path.abspath(os.path.expanduser(path)) if own else checkpoint_file(
        progress=progress)
    digest = None
    if os.path.isfile(path):
        problem = None
        if own and sha256 and (got := download.file_digest(path)) != sha256.lower():
            problem = (f"sha256 {got}, not the expected {sha256} (config.model."
                       f"checkpoint_sha256, or embed's --checkpoint_sha256)")
        digest = download.file_digest(path, "md5")
        if not own and (digest, os.path.getsize(path)) != (CHECKPOINT.md5, CHECKPOINT.size):
            problem = (f"md5 {digest} and {os.path.getsize(path)} bytes, not Zenodo's "
                       f"{CHECKPOINT.md5} and {CHECKPOINT.size}")
        if problem:
            fix = ("delete it and download " + CHECKPOINT.url) if not own else (
                "fix config.model.checkpoint or its sha256")
            raise UserError(f"'{path}' has {problem}: a damaged or different file; {fix}")
    elif own:
        what = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"config.model.checkpoint '{path}' {what}")
    else:
        digest = CHECKPOINT.md5  # converted before, the file since deleted
    cached = f"{path}.{digest[:16]}.flax.msgpack"
    variables = None
    if os.path.isfile(cached):
        try:
            variables = _read_cached(cached)
        except Exception as e:  # damaged or edited: convert the file again if it is there
            if not os.path.isfile(path):
                raise UserError(f"'{cached}' (converted PANNs weights) cannot be read "
                                f"({type(e).__name__}: {e}); delete it and put "
                                f"{CHECKPOINT.url} at '{path}'") from None
    if variables is None:
        variables = convert(_state_dict(path))
        try:  # whole or not at all; a cache that cannot be written only costs the speed-up
            strict_json.write_bytes(cached, flax.serialization.msgpack_serialize(
                jax.tree.map(np.asarray, variables)))
        except OSError as e:
            warnings.warn(f"cannot keep the converted PANNs weights beside '{path}' "
                          f"({e.strerror or e}); converting them again next time")
    return jax.tree.map(jnp.asarray, variables)


def _state_dict(path: str) -> Mapping[str, np.ndarray]:
    """The state dict of a PANNs checkpoint (its 'model' entry, as PANNs saves it) or of a
    plain state dict (as a user's own `torch.save(model.state_dict())` is)."""
    try:
        return pth.load_state_dict(path, entry=CHECKPOINT.entry)
    except pth.UnsafeCheckpoint:
        raise
    except pth.UnreadableCheckpoint as first:
        try:
            return pth.load_state_dict(path)
        except pth.UnreadableCheckpoint:
            raise first from None
