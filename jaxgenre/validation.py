"""A config checked before anything runs, so that a value a user typed ends in one line
naming the key and the fix (launch.py prints it and exits 2), not in a traceback from
deep inside training. Checks what can be known from the config alone; paths and data
folders are checked where they are opened (`data.sources`), with the same error type.
"""

from __future__ import annotations

from jaxgenre import features, models
from jaxgenre.training import selection, steps
from jaxgenre.results import metrics
from jaxgenre.data import archive, cache, download, fma, sources, splits, synthetic
from jaxgenre.errors import UserError
from jaxgenre.models import adapter, layers


def _one_of(key: str, value, allowed) -> None:
    if value not in allowed:
        raise UserError(f"config.{key} must be one of {', '.join(map(str, allowed))}; "
                        f"got {value!r}")


def _positive(key: str, value) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise UserError(f"config.{key} must be a whole number of at least 1; got {value!r}")


def check_config(config) -> None:
    """Raises `UserError` for the first value that cannot work, else returns None."""
    spec = models.get_spec(config.model.name)
    kind = config.features.kind
    _one_of("features.kind", kind, features.KINDS)
    feature = features.FeatureSpec.from_config(config.features)  # refuses unknown keys
    if kind not in spec.feature_kinds:
        takers = [n for n, s in models.REGISTRY.items() if kind in s.feature_kinds]
        raise UserError(
            f"config.model.name={spec.name!r} takes {', '.join(spec.feature_kinds)} features, "
            f"not features.kind={kind!r}; pick one of those kinds, or a model that takes "
            f"{kind!r} ({', '.join(takers) or 'none is registered yet'})")
    _one_of("data.source", config.data.source, sources.SOURCES)
    # Values the sources check when they open, asked here before any download or decode.
    _one_of("data.synthetic.variant", config.data.synthetic.variant, synthetic.VARIANTS)
    _one_of("data.fma.subset", config.data.fma.subset, fma.SUBSETS)
    if config.data.source == "folder" and not config.data.root:
        raise UserError("data.source='folder' needs --config.data.root=PATH (a GTZAN folder "
                        "or any <root>/<class>/<audio files> folder)")
    if config.data.split is not None:
        _one_of("data.split", config.data.split, splits.SPLITS)
    _one_of("model.dtype", config.model.dtype, tuple(models.DTYPES))
    # Before the data are opened and cached: steps.create_optimizer runs only after that.
    _one_of("optim.name", config.optim.name, steps.OPTIMIZERS)
    _one_of("optim.schedule", config.optim.schedule, steps.SCHEDULES)
    _one_of("data.cache_dtype", config.data.cache_dtype, cache.DTYPES)
    if config.model.normalisation is not None:
        _one_of("model.normalisation", config.model.normalisation, adapter.NORMALISATIONS)
    _one_of("model.depthwise", config.model.depthwise,
            ("auto",) + layers.DEPTHWISE)
    for key in ("train.batch_size", "eval.batch_size", "train.epochs", "train.keep",
                "train.checkpoint_every", "train.log_every", "data.folds"):
        section, name = key.split(".")
        _positive(key, config[section][name])
    ref = config.features.ref
    if not (ref == "max" or (isinstance(ref, (int, float)) and ref > 0)):
        raise UserError(f"config.features.ref must be a positive number or 'max'; got {ref!r}")
    if config.data.segment_seconds is not None and config.data.segment_seconds <= 0:
        raise UserError(f"config.data.segment_seconds must be positive (or None for whole "
                        f"clips); got {config.data.segment_seconds!r}")
    _check_recipe(config, feature)
    _check_fetch_limits(config.data)
    if config.seeds is not None:
        _positive("seeds", config.seeds)
        if config.data.split == "kfold" and config.data.fold is None:
            raise UserError("config.seeds with data.split='kfold' would train folds x seeds "
                            "runs: pick one fold (--config.data.fold=K) or drop seeds")


def _check_fetch_limits(data) -> None:
    """`data.archive.*` and `data.download.*`: whole numbers / numbers above 0."""
    for section, limits in (("archive", archive.Limits.from_config(data)),
                            ("download", download.TransferLimits.from_config(data))):
        for key, value in vars(limits).items():
            if key.startswith("max_") and key != "max_ratio":
                if value is None:  # _positive lets None (unset) through; these are caps
                    raise UserError(f"config.data.{section}.{key} must be a whole number of "
                                    f"at least 1; got None")
                _positive(f"data.{section}.{key}", value)
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise UserError(f"config.data.{section}.{key} must be a number above 0; "
                                f"got {value!r}")


def _fraction(key: str, value, *, upper: float = 1.0, closed: bool = True) -> None:
    ok = isinstance(value, (int, float)) and 0 <= value and (value <= upper if closed
                                                              else value < upper)
    if not ok:
        raise UserError(f"config.{key} must be a number in [0, {upper:g}{']' if closed else ')'}; "
                        f"got {value!r}")


def _check_recipe(config, feature: features.FeatureSpec) -> None:
    """`augment.*`, `train.label_smoothing`, `optim.warmup_fraction` / `ema_decay`, `eval.*`
    windows."""
    aug = config.augment
    if aug.spec_augment:
        if feature.is_waveform:
            raise UserError("config.augment.spec_augment masks frequency bands and frames "
                            f"of a spectral feature; features.kind={feature.kind!r} has none: "
                            "turn it off")
        for key in ("freq_masks", "time_masks"):
            if not isinstance(aug[key], int) or aug[key] < 0:
                raise UserError(f"config.augment.{key} must be a whole number >= 0; "
                                f"got {aug[key]!r}")
        for key in ("freq_mask_fraction", "time_mask_fraction"):
            _fraction(f"augment.{key}", aug[key])
    if aug.crops_per_clip is not None:
        _positive("augment.crops_per_clip", aug.crops_per_clip)
    for key in ("mixup_alpha", "gain_db"):
        value = aug[key]
        if not isinstance(value, (int, float)) or value < 0:
            raise UserError(f"config.augment.{key} must be a number >= 0 (0 is off); "
                            f"got {value!r}")
    _fraction("train.label_smoothing", config.train.label_smoothing, closed=False)
    _fraction("optim.warmup_fraction", config.optim.warmup_fraction, closed=False)
    _fraction("optim.ema_decay", config.optim.ema_decay, closed=False)
    _fraction("eval.window_overlap", config.eval.window_overlap, closed=False)
    _one_of("eval.clip_mean", config.eval.clip_mean, metrics.CLIP_MEANS)
    _one_of("train.select", config.train.select, selection.RULES)
