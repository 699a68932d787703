"""A config checked before anything runs, so that a value a user typed ends in one line
naming the key and the fix (launch.py prints it and exits 2), not in a traceback from
deep inside training. Checks what can be known from the config alone; paths and data
folders are checked where they are opened (`data.sources`), with the same error type.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Tuple

from jaxgenre import features, models
from jaxgenre.training import selection, steps
from jaxgenre.results import metrics
from jaxgenre.data import cache, fma, resident, sources, splits, synthetic
from jaxgenre.errors import UserError
from jaxgenre.models import adapter, layers, musicnn_port


def _one_of(key: str, value, allowed) -> None:
    if value not in allowed:
        raise UserError(f"config.{key} must be one of {', '.join(map(str, allowed))}; "
                        f"got {value!r}")


def _positive(key: str, value) -> None:
    if value is not None and (not _is_whole(value) or value < 1):
        raise UserError(f"config.{key} must be a whole number of at least 1; got {value!r}")


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one config value may be, said once: `kind` is 'whole' (an int >= `low`),
    'number' (a finite number >= `low`, or > `low` when `open_low`; below `high`, or at
    most it when `closed_high`), 'flag' (True/False), 'choice' (one of `choices`, which
    come from the module that uses the value), 'text' (a string: a path, a name or a
    URL, checked where it is used), 'hex' (`length` hex digits: a digest) or 'urls' (a
    non-empty tuple of addresses: http(s) or file:// URLs, paths). `optional`: None is allowed too."""
    kind: str
    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    closed_high: bool = True
    choices: Tuple[Any, ...] = ()
    length: int = 0
    optional: bool = False

    def check(self, key: str, value) -> None:
        if value is None and self.optional:
            return
        if self.kind == "choice":
            return _one_of(key, value, self.choices)
        if self.kind == "whole":
            if not _is_whole(value) or value < self.low:
                raise UserError(f"config.{key} must be a whole number of at least "
                                f"{self.low:g}{self._or_none}; got {value!r}")
        elif self.kind == "number":
            ok = _is_number(value) and (value > self.low if self.open_low
                                        else value >= self.low)
            if not (ok and (value <= self.high if self.closed_high else value < self.high)):
                raise UserError(f"config.{key} must be {self._range}{self._or_none}; "
                                f"got {value!r}")
        elif self.kind == "flag":
            if not isinstance(value, bool):
                raise UserError(f"config.{key} must be True or False; got {value!r}")
        elif self.kind == "text":
            if not isinstance(value, str) or not value:
                raise UserError(f"config.{key} must be a non-empty string{self._or_none}; "
                                f"got {value!r}")
        elif self.kind == "hex":
            if not (isinstance(value, str) and len(value) == self.length
                    and all(c in "0123456789abcdefABCDEF" for c in value)):
                raise UserError(f"config.{key} must be {self.length} hex digits (a digest)"
                                f"{self._or_none}; got {value!r}")
        elif self.kind == "urls":  # what download.fetch takes: http(s) or file:// URLs, paths
            if not (isinstance(value, (tuple, list)) and value
                    and all(isinstance(u, str) and u for u in value)):
                raise UserError(f"config.{key} must be a non-empty tuple of addresses (http(s) "
                                f"or file:// URLs, or paths); got {value!r}")
        else:
            raise ValueError(f"unknown rule kind {self.kind!r} for config.{key}")

    @property
    def _or_none(self) -> str:
        return " (or None)" if self.optional else ""

    @property
    def _range(self) -> str:
        if math.isinf(self.high):
            return f"a number {'above' if self.open_low else 'of at least'} {self.low:g}"
        return (f"a number in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
                f"{']' if self.closed_high else ')'}")


def _whole(low: int = 1, optional: bool = False) -> Rule:
    return Rule("whole", low=low, optional=optional)


def _number(low: float = 0.0, *, open_low: bool = True, high: float = math.inf,
            closed_high: bool = True, optional: bool = False) -> Rule:
    return Rule("number", low=low, open_low=open_low, high=high, closed_high=closed_high,
                optional=optional)


_FLAG, _TEXT, _PATH = Rule("flag"), Rule("text"), Rule("text", optional=True)
_FRACTION = _number(0.0, open_low=False, high=1.0, closed_high=False)  # [0, 1)
_UNIT = _number(0.0, open_low=False, high=1.0)                         # [0, 1]
_AT_LEAST_0 = _number(0.0, open_low=False)
_UNIT_OPEN = _number(0.0, high=1.0)                                    # (0, 1]


def rules() -> Dict[str, Rule]:
    """Every key of `configs/base.py`'s config → its rule (tests/test_validation_rules.py
    fails when a key has none); the choices are asked of the modules that use them. Keys
    read in combination with others also have their own checks below."""
    choice = lambda values, optional=False: Rule("choice", choices=tuple(values),
                                                  optional=optional)
    return {
        "seed": _whole(0), "seeds": _whole(1, optional=True), "cpu_xla_flags": _FLAG, "grid": _FLAG,
        "augment.crops_per_clip": _whole(1, optional=True),
        "augment.freq_mask_fraction": _UNIT, "augment.time_mask_fraction": _UNIT,
        "augment.freq_masks": _whole(0), "augment.time_masks": _whole(0),
        "augment.gain_db": _AT_LEAST_0, "augment.mixup_alpha": _AT_LEAST_0,
        "augment.random_crop": _FLAG, "augment.spec_augment": _FLAG,
        "data.source": choice(sources.SOURCES),
        "data.root": _PATH, "data.home": _PATH, "data.cache_dir": _PATH,
        "data.tfds_dir": _PATH, "data.cache_dtype": choice(cache.DTYPES),
        "data.clip_seconds": _number(), "data.min_seconds": _AT_LEAST_0,
        "data.segment_seconds": _number(optional=True),
        "data.segment_hop_seconds": _number(optional=True),
        "data.split": choice(splits.SPLITS, optional=True),
        "data.fold": _whole(0, optional=True), "data.folds": _whole(2),
        "data.fractions": Rule("fractions"), "data.seed": _whole(0, optional=True),
        "data.archive.max_bytes": _whole(1), "data.archive.max_members": _whole(1),
        "data.archive.max_ratio": _number(),
        "data.download.max_bytes": _whole(1), "data.download.deadline_seconds": _number(),
        "data.gtzan.urls": Rule("urls"), "data.gtzan.sha256": Rule("hex", length=64),
        "data.fma.mirrors": Rule("urls"), "data.fma.subset": choice(fma.SUBSETS),
        **{f"data.fma.sha1.{name}": Rule("hex", length=40)
           for name in (*fma.SUBSETS, "metadata")},
        "data.synthetic.variant": choice(synthetic.VARIANTS),
        "data.synthetic.clips_per_class": _whole(1), "data.synthetic.epochs": _whole(1),
        "data.synthetic.seconds": _number(),
        "eval.batch_size": _whole(1), "eval.clip_mean": choice(metrics.CLIP_MEANS),
        "eval.plots": _FLAG, "eval.window_overlap": _FRACTION,
        "features.kind": choice(features.KINDS), "features.sr": _whole(1),
        "features.hop_length": _whole(1), "features.n_fft": _whole(1),
        "features.n_mels": _whole(1), "features.n_mfcc": _whole(1),
        "features.fmin": _AT_LEAST_0, "features.fmax": _number(optional=True),
        "features.top_db": _number(optional=True), "features.ref": Rule("ref"),
        "model.name": choice(models.REGISTRY), "model.checkpoint": _PATH,
        "model.checkpoint_sha256": Rule("hex", length=64, optional=True),
        "model.depthwise": choice(("auto",) + layers.DEPTHWISE),
        "model.dtype": choice(models.DTYPES), "model.input_size": Rule("size", optional=True),
        "model.normalisation": choice(adapter.NORMALISATIONS, optional=True),
        "model.num_classes": _whole(2), "model.pretrained": _FLAG, "model.freeze_backbone": _FLAG,
        "model.weights": choice(musicnn_port.TAGS),  # MSD | MTT
        "optim.backbone_lr_scale": _AT_LEAST_0,
        "optim.name": choice(steps.OPTIMIZERS), "optim.schedule": choice(steps.SCHEDULES),
        "optim.learning_rate": _number(), "optim.weight_decay": _AT_LEAST_0,
        "optim.warmup_fraction": _FRACTION, "optim.ema_decay": _FRACTION,
        "train.async_checkpoints": _FLAG, "train.tensorboard": _FLAG, "train.vectorize_seeds": _FLAG,
        "train.batch_size": _whole(1), "train.epochs": _whole(1, optional=True),
        "train.keep": _whole(1), "train.checkpoint_every": _whole(1),
        "train.log_every": _whole(1), "train.prefetch": _whole(0), "train.compilation_cache": _TEXT,
        "train.compilation_cache_min_seconds": _AT_LEAST_0, "train.label_smoothing": _FRACTION,
        "train.select": choice(selection.RULES), "train.resident": choice(resident.SETTINGS),
        "train.steps_per_dispatch": _whole(1), "train.resident_memory_fraction": _UNIT_OPEN}


def _check_compound(key: str, value) -> None:
    """The rules of values made of several parts."""
    if key == "data.fractions":
        ok = (isinstance(value, (tuple, list)) and len(value) == 3
              and all(_is_number(f) and f >= 0 for f in value)
              and math.isclose(sum(value), 1.0, abs_tol=1e-6))
        if not ok:
            raise UserError(f"config.data.fractions must be three non-negative numbers (train, "
                            f"valid, test) summing to 1; got {value!r}")
    elif key == "features.ref":
        if not (value == "max" or (_is_number(value) and value > 0)):
            raise UserError(f"config.features.ref must be a positive number or 'max'; "
                            f"got {value!r}")
    elif key == "model.input_size":
        ok = (isinstance(value, (tuple, list)) and len(value) == 2
              and all(_is_whole(v) and v >= 1 for v in value))
        if not ok:
            raise UserError(f"config.model.input_size must be (height, width) in whole "
                            f"numbers of at least 1, or None; got {value!r}")


def check_values(config) -> None:
    """Every key `rules()` names, checked against its rule (a key the config lacks is
    skipped: `configs/base.with_defaults` fills those in before a run)."""
    for key, rule in rules().items():
        node = config
        for part in key.split("."):
            if part not in node:
                break
            node = node[part]
        else:
            if node is None and rule.optional:
                continue
            if rule.kind in ("fractions", "ref", "size"):
                _check_compound(key, node)
            else:
                rule.check(key, node)


def check_config(config) -> None:
    """Raises `UserError` for the first value that cannot work, else returns None: each
    value against its rule (`rules()`), then the values that must agree with each other."""
    spec = models.get_spec(config.model.name)  # its own message lists the models
    check_values(config)
    kind = config.features.kind
    feature = features.FeatureSpec.from_config(config.features)  # refuses unknown keys
    if kind not in spec.feature_kinds:
        takers = [n for n, s in models.REGISTRY.items() if kind in s.feature_kinds]
        raise UserError(
            f"config.model.name={spec.name!r} takes {', '.join(spec.feature_kinds)} features, "
            f"not features.kind={kind!r}; pick one of those kinds, or a model that takes "
            f"{kind!r} ({', '.join(takers) or 'none is registered yet'})")
    if config.model.checkpoint_sha256 and not config.model.checkpoint:
        raise UserError("config.model.checkpoint_sha256 checks config.model.checkpoint, "
                        "which is unset: give both, or neither (the pinned weights carry "
                        "their own digest)")
    if config.model.freeze_backbone and not config.model.pretrained and (
            spec.tagger_weights or spec.audioset):
        raise UserError(f"config.model.freeze_backbone would freeze {spec.name}'s random "
                        f"weights (model.pretrained=False): a probe of an untrained "
                        f"backbone measures nothing; set --config.model.freeze_backbone="
                        f"False to train it from scratch")
    if config.model.freeze_backbone and "freeze_backbone" not in spec.options:
        able = [n for n, s in models.REGISTRY.items() if "freeze_backbone" in s.options]
        raise UserError(f"config.model.freeze_backbone: {spec.name} has no frozen-backbone "
                        f"mode; models that have one: {', '.join(able) or 'none'}")
    fixed_front_end = spec.tagger_weights or spec.audioset
    if fixed_front_end and config.model.input_size is not None:
        raise UserError(f"config.model.name={spec.name!r} takes its front end's "
                        f"{feature.n_rows} mel bands as they are: leave model.input_size "
                        f"unset (got {config.model.input_size!r})")
    frames = feature.frames(config.data.segment_seconds)
    if spec.fixed_frames and frames != spec.fixed_frames:
        seconds = spec.fixed_frames * feature.hop_length / feature.sr
        raise UserError(f"config.model.name={spec.name!r} takes exactly {spec.fixed_frames} "
                        f"frames per window; data.segment_seconds="
                        f"{config.data.segment_seconds!r} gives {frames}: set "
                        f"--config.data.segment_seconds={seconds!r}")
    if spec.min_frames and frames is not None and frames < spec.min_frames:
        seconds = spec.min_frames * feature.hop_length / feature.sr
        raise UserError(f"config.model.name={spec.name!r} needs windows of at least "
                        f"{spec.min_frames} frames; data.segment_seconds="
                        f"{config.data.segment_seconds!r} gives {frames}: set "
                        f"--config.data.segment_seconds={seconds!r} or more")
    if spec.tagger_weights and config.model.pretrained and config.model.checkpoint:
        raise UserError(f"config.model.checkpoint is for ImageNet weights; "
                        f"{spec.name}'s pretrained weights are musicnn's "
                        f"(model.weights=MSD|MTT): leave model.checkpoint unset")
    if spec.audioset and config.model.pretrained and "://" in (config.model.checkpoint or ""):
        raise UserError(f"config.model.checkpoint for {spec.name} is a file path (download "
                        f"{config.model.checkpoint} yourself and give its path and "
                        f"model.checkpoint_sha256); only PANNs' own file is fetched here")
    if fixed_front_end and config.model.pretrained:
        # The weights learnt their front end's values: another scaling would feed them noise.
        norm = config.model.normalisation or spec.normalisation
        if norm != "none" or config.model.input_size is not None:
            raise UserError(f"config.model.name={spec.name!r} with pretrained weights takes "
                            f"its front end's log-mel images as they are: leave "
                            f"model.normalisation and model.input_size unset (got "
                            f"{norm!r}, {config.model.input_size!r}), or set "
                            f"model.pretrained=False")
    if config.optim.backbone_lr_scale != 1.0 and not spec.head_names():
        raise UserError(f"config.optim.backbone_lr_scale={config.optim.backbone_lr_scale!r} "
                        f"needs a model whose spec names its head; {spec.name} names none")
    if config.data.source == "folder" and not config.data.root:
        raise UserError("data.source='folder' needs --config.data.root=PATH (a GTZAN folder "
                        "or any <root>/<class>/<audio files> folder)")
    if config.data.fold is not None and config.data.fold >= config.data.folds:
        raise UserError(f"config.data.fold must be below data.folds ({config.data.folds}): "
                        f"0 .. {config.data.folds - 1}; got {config.data.fold!r}")
    if config.augment.spec_augment and feature.is_waveform:
        raise UserError("config.augment.spec_augment masks frequency bands and frames "
                        f"of a spectral feature; features.kind={feature.kind!r} has none: "
                        "turn it off")
    if config.seeds is not None and config.data.split == "kfold" and config.data.fold is None:
        raise UserError("config.seeds with data.split='kfold' would train folds x seeds "
                        "runs: pick one fold (--config.data.fold=K) or drop seeds")
    if config.train.vectorize_seeds and config.seeds is None:
        raise UserError("config.train.vectorize_seeds trains the runs of config.seeds as one "
                        "program; config.seeds is unset: set --config.seeds=N, or drop it")
