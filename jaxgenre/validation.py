"""A config checked before anything runs, so that a value a user typed ends in one line
naming the key and the fix (launch.py prints it and exits 2), not in a traceback from
deep inside training. Checks what can be known from the config alone; paths and data
folders are checked where they are opened (`data.sources`), with the same error type.
"""

from __future__ import annotations

from jaxgenre import features, models
from jaxgenre.data import cache, sources, splits
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
    if kind not in spec.feature_kinds:
        takers = [n for n, s in models.REGISTRY.items() if kind in s.feature_kinds]
        raise UserError(
            f"config.model.name={spec.name!r} takes {', '.join(spec.feature_kinds)} features, "
            f"not features.kind={kind!r}; pick one of those kinds, or a model that takes "
            f"{kind!r} ({', '.join(takers) or 'none is registered yet'})")
    _one_of("data.source", config.data.source, sources.SOURCES)
    if config.data.source == "folder" and not config.data.root:
        raise UserError("data.source='folder' needs --config.data.root=PATH (a GTZAN folder "
                        "or any <root>/<class>/<audio files> folder)")
    if config.data.split is not None:
        _one_of("data.split", config.data.split, splits.SPLITS)
    _one_of("model.dtype", config.model.dtype, tuple(models.DTYPES))
    _one_of("data.cache_dtype", config.data.get("cache_dtype", "float32"), cache.DTYPES)
    if config.model.get("normalisation") is not None:
        _one_of("model.normalisation", config.model.normalisation, adapter.NORMALISATIONS)
    _one_of("model.depthwise", config.model.get("depthwise", "auto"),
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
