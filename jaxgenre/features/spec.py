"""One feature, as `config.features` asks for it: a frozen, hashable spec.

The rest of the package asks the spec, never the raw config group, what follows from the
feature kind: the transform and only its parameters (`compute`), whether an example is a
1-D signal or an image (`example_rank`, `time_unit`), how many frames a duration is
(`frames`), the shape of one example (`example_shape`) and what identifies it in the
feature cache (`identity`). Before this, `kind` rode inside an untyped dict of every
transform's parameters and each consumer re-derived these facts (issue 23, item 1).

    spec = FeatureSpec.from_config(config.features)
    x = spec.compute(audio)                      # (batch, n_rows, n_frames) or (batch, n)
    spec.example_shape(spec.frames(3.0))         # (128, 129) for the default mel
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Dict, Mapping, Optional, Tuple

import jax
import numpy as np

from jaxgenre.errors import UserError
from jaxgenre.features import transforms

# The study's four inputs, then the fixed front ends of pretrained models
# (`transforms.FIXED_FRONT_ENDS`: musicnn's, `models.musicnn`, and PANNs', `models.panns`),
# which take only the shared sr and hop_length, to refuse any but their own.
STUDY_KINDS = ("mel", "spec", "mfcc", "waveform")
KINDS = STUDY_KINDS + tuple(transforms.FIXED_FRONT_ENDS)

# The keyword parameters each transform takes (librosa's names), so a config key that
# belongs to another kind is left out of this one's computation and of its cache key.
_STFT = ("n_fft", "hop_length", "win_length", "window", "center", "pad_mode", "ref", "amin",
         "top_db")
_MEL_BANK = ("sr", "n_mels", "fmin", "fmax", "htk")
PARAMETERS: Dict[str, Tuple[str, ...]] = {
    "spec": _STFT,
    "mel": _STFT + _MEL_BANK + ("norm",),
    "mfcc": _STFT + _MEL_BANK + ("n_mfcc", "dct_type", "norm", "lifter", "mel_norm"),
    "waveform": ("norm",),
    "musicnn": ("sr", "hop_length"),
    "panns": ("sr", "hop_length"),
}
# Keys every kind reads besides its transform's: the audio's sample rate and the hop,
# which turn seconds into samples or frames.
SHARED = ("kind", "sr", "hop_length")
_TRANSFORMS = {"mel": transforms.melspectrogram_db, "spec": transforms.spectrogram_db,
               "mfcc": transforms.mfcc, "waveform": transforms.waveform,
               "musicnn": transforms.musicnn_logmel, "panns": transforms.panns_logmel}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UserError(f"unknown feature kind {kind!r} (config.features.kind); "
                        f"expected one of {', '.join(KINDS)}")


def known_keys() -> Tuple[str, ...]:
    """Every key `config.features` may hold: validation rejects the others."""
    return tuple(sorted(set(SHARED).union(*PARAMETERS.values())))


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """`kind`, the audio's `sr`, the STFT `hop_length` (unused by 'waveform') and the
    transform's other keyword parameters as sorted (name, value) pairs. `sr` and
    `hop_length` are held once, as fields, and handed to the transforms that take them."""
    kind: str
    sr: int
    hop_length: int
    params: Tuple[Tuple[str, Any], ...] = ()

    def __post_init__(self):
        _check_kind(self.kind)
        for name in ("sr", "hop_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"config.features.{name} must be a whole number of at least "
                                f"1; got {value!r}")
        fixed = transforms.FIXED_FRONT_ENDS.get(self.kind)
        if fixed and (self.sr, self.hop_length) != (fixed["sr"], fixed["hop_length"]):
            raise UserError(f"features.kind={self.kind!r} is a pretrained model's fixed front "
                            f"end: set --config.features.sr={fixed['sr']} --config.features."
                            f"hop_length={fixed['hop_length']} (got {self.sr}, "
                            f"{self.hop_length})")
        extra = [k for k, _ in self.params if k not in PARAMETERS[self.kind] or k in SHARED]
        if extra:
            raise UserError(f"features.kind={self.kind!r} takes no parameter "
                            f"{', '.join(extra)} here; it takes "
                            f"{', '.join(k for k in PARAMETERS[self.kind] if k not in SHARED)}"
                            f" (and the sr and hop_length fields)")

    @classmethod
    def from_config(cls, features: Mapping[str, Any]) -> "FeatureSpec":
        """The spec of a `config.features` group (a ConfigDict or a plain dict, e.g. from
        an older run.json, or `{"kind": "mel", "ref": "max"}`): its kind plus only the keys
        that kind's transform takes. A missing key is the transform's (librosa's) default."""
        kind = features["kind"]
        _check_kind(kind)  # before PARAMETERS[kind] below
        unknown = sorted(set(features) - set(known_keys()))
        if unknown:
            raise UserError(f"config.features has no key {', '.join(unknown)}; the keys are "
                            f"{', '.join(known_keys())}")
        taken = [k for k in PARAMETERS[kind] if k not in SHARED]
        params = tuple(sorted((k, _plain(features[k])) for k in features if k in taken))
        own = inspect.signature(_TRANSFORMS[kind]).parameters  # sr, hop: its, or librosa's
        librosa = inspect.signature(transforms.melspectrogram_db).parameters
        shared = {k: _whole(features[k]) if k in features else (own.get(k) or librosa[k]).default
                  for k in ("sr", "hop_length")}
        return cls(kind=kind, params=params, **shared)

    @property
    def kwargs(self) -> Dict[str, Any]:
        """The transform's keyword arguments (`sr` and `hop_length` where it takes them)."""
        taken = PARAMETERS[self.kind]
        shared = {k: getattr(self, k) for k in ("sr", "hop_length") if k in taken}
        return {**dict(self.params), **shared}

    @property
    def is_waveform(self) -> bool:
        return self.kind == "waveform"

    @property
    def example_rank(self) -> int:
        """Axes of one example: 1 for a signal `(samples,)`, 2 for an image
        `(n_rows, n_frames)`."""
        return 1 if self.is_waveform else 2

    @property
    def time_unit(self) -> str:
        """What the last axis counts: 'samples' or 'frames'."""
        return "samples" if self.is_waveform else "frames"

    def pad_to(self, feature, frames: int):
        """`feature` (a numpy array, time last) padded at the end to at least `frames`:
        with 0 for a waveform, with its minimum (the dB floor) for the spectral kinds.
        What predict and embed do with a file shorter than one window."""
        short = frames - feature.shape[-1]
        if short <= 0:
            return feature
        fill = 0.0 if self.is_waveform or not feature.size else feature.min()
        return np.pad(feature, [(0, 0)] * (feature.ndim - 1) + [(0, short)],
                      constant_values=fill)

    def frames(self, seconds: Optional[float]) -> Optional[int]:
        """A duration along the time axis (None stays None): samples at `sr` for a
        waveform, STFT frames of `hop_length` for the spectral kinds."""
        if seconds is None:
            return None
        # seconds * sr first, as runs have always cut segments (the rounding of an exact
        # .5 can differ with sr / hop_length first: 0.35 s at 22050 / 441 Hz)
        samples = seconds * self.sr
        return int(round(samples if self.is_waveform else samples / self.hop_length))

    @property
    def n_rows(self) -> Optional[int]:
        """The image's height: mel bands, STFT bins or coefficients; None for a signal."""
        if self.kind == "mel":
            return int(self.value("n_mels"))
        if self.kind in transforms.FIXED_FRONT_ENDS:
            return transforms.FIXED_FRONT_ENDS[self.kind]["n_mels"]
        if self.kind == "mfcc":
            return int(self.value("n_mfcc"))
        if self.kind == "spec":
            return 1 + int(self.value("n_fft")) // 2
        return None

    def value(self, name: str) -> Any:
        """A parameter as the transform will see it: given, or the transform's default."""
        kwargs = self.kwargs
        if name in kwargs:
            return kwargs[name]
        for transform in (_TRANSFORMS[self.kind], transforms.melspectrogram_db):
            parameter = inspect.signature(transform).parameters.get(name)
            if parameter is not None and parameter.default is not inspect.Parameter.empty:
                return parameter.default
        raise KeyError(name)

    def example_shape(self, n_frames: int) -> Tuple[int, ...]:
        """The shape of one example `n_frames` long."""
        return (n_frames,) if self.is_waveform else (self.n_rows, n_frames)

    def compute(self, y) -> jax.Array:
        """The feature of float audio `(..., samples)`: `(..., n_rows, n_frames)`, or
        `(..., samples)` for a waveform."""
        return _TRANSFORMS[self.kind](y, **self.kwargs)

    def identity(self) -> Dict[str, Any]:
        """What the feature cache keys an entry by: the kind and the transform's
        parameters (the audio's sr is the source's, keyed with the source)."""
        return {"kind": self.kind, **self.kwargs}


def every_kind(features: Mapping[str, Any]) -> Tuple[FeatureSpec, ...]:
    """The study's four kinds, each with one `config.features` group's parameters: the
    figures that show a clip's features side by side."""
    return tuple(FeatureSpec.from_config({**dict(features), "kind": kind})
                 for kind in STUDY_KINDS)


def _whole(value: Any) -> Any:
    """An integral number (22050.0 from a JSON file) as int; anything else unchanged, for
    `__post_init__` to refuse in one line."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _plain(value: Any) -> Any:
    """A hashable config value (a list, e.g. a window given as ('kaiser', 8.0), as a
    tuple)."""
    return tuple(value) if isinstance(value, list) else value
