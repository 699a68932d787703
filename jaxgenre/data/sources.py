"""Where clips come from, opened by name: the built-in synthetic set (the default, so
everything runs offline), a local folder (`folder.py`), GTZAN fetched and unpacked
(`gtzan.py`), FMA fetched and unpacked (`fma.py`), or TFDS `gtzan` (`tfds_gtzan.py`).
The interface they share is in `types.py`; fetching is `download.py`'s.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from configs import base
from jaxgenre.data import archive, download, fma, gtzan, synthetic, tfds_gtzan
from jaxgenre.data.folder import GTZAN_HELP, FolderSource  # noqa: F401 (re-exported)
from jaxgenre.data.types import ClipRef, DataReport, DataSourceError, Source  # noqa: F401

SOURCES = ("synthetic", "folder", "gtzan", "fma", "tfds")


class SyntheticSource(Source):
    """The built-in genre set (`synthetic.py`): nothing to download, nothing rejected."""
    name = "synthetic"

    def __init__(self, *, clips_per_class: int = 20, seconds: float = 30.0, seed: int = 0,
                 sr: int = 22050, clip_seconds: Optional[float] = None,
                 variant: str = "standard"):
        super().__init__(sr=sr, clip_seconds=clip_seconds or seconds)
        if clips_per_class < 1 or seconds <= 0:
            raise DataSourceError(f"synthetic data needs clips_per_class >= 1 and seconds > 0, "
                                  f"got {clips_per_class} and {seconds}")
        if variant not in synthetic.VARIANTS:
            raise DataSourceError(f"data.synthetic.variant must be one of "
                                  f"{', '.join(synthetic.VARIANTS)}; got {variant!r}")
        self.clips_per_class, self.seconds, self.seed = clips_per_class, seconds, seed
        self.variant = variant
        self.class_names = synthetic.CLASS_NAMES
        ids, labels = synthetic.clip_ids(clips_per_class)
        self.clips = tuple(ClipRef(i, int(l), n % clips_per_class)
                           for n, (i, l) in enumerate(zip(ids, labels)))
        self.report = DataReport(source="synthetic", class_names=list(self.class_names))
        for ref in self.clips:
            self.report.accept(self.class_names[ref.label], seconds)
        self.report.notes.append(f"generated from seed {seed}: {clips_per_class} clips per "
                                 f"class of {seconds:g} s ({variant} variant)")

    def _load(self, ref: ClipRef) -> np.ndarray:
        return synthetic.generate_clip(ref.label, ref.locator, seed=self.seed,
                                       seconds=self.seconds, sr=self.sr, variant=self.variant)

    def identity(self) -> dict:
        identity = {"source": "synthetic", "seed": self.seed, "seconds": self.seconds,
                    "version": synthetic.VERSION}
        if self.variant != "standard":  # the standard set keeps the cache keys it had
            identity["variant"] = self.variant
        return identity


# open_source's keywords that are not `config.data.<same name>`.
_SETTINGS = {"sr": ("features", "sr"), "clips_per_class": ("data", "synthetic", "clips_per_class"),
             "synthetic_seconds": ("data", "synthetic", "seconds"),
             "synthetic_variant": ("data", "synthetic", "variant")}


def open_source(name: str, *, progress: bool = True, **settings) -> Source:
    """`create_source` of configs/base.py's config with `data.source=name` and each of
    `settings` set: a key of `config.data` (root, tfds_dir, min_seconds, clip_seconds,
    seed, home, ...) or one of `_SETTINGS`' names. For tools and tests that open one
    source without a config file; every default is configs/base.py's."""
    config = base.get_config()
    config.data.source = name
    for key, value in settings.items():
        *path, last = _SETTINGS.get(key, ("data", key))
        section = config
        for part in path:
            section = section[part]
        if last not in section:
            raise TypeError(f"open_source() got an unknown setting {key!r}")
        section[last] = value
    return create_source(config, progress=progress)


def data_seed(config) -> int:
    """The seed of the data — the synthetic set and the split: `config.data.seed`, or
    when None `config.seed`. Fix it to train several seeds on one split (seed ensembles)."""
    seed = config.data.seed
    return config.seed if seed is None else seed


def create_source(config, progress: bool = True) -> Source:
    """The source `config.data` describes (features.sr sets the sample rate). 'gtzan'
    and 'fma' are fetched and unpacked into the data home first, within
    `config.data.archive` / `.download`'s caps."""
    data, sr = config.data, config.features.sr
    checks = dict(sr=sr, min_seconds=data.min_seconds, clip_seconds=data.clip_seconds,
                  progress=progress)
    fetch = dict(home=data.home, progress=progress, limits=archive.Limits.from_config(data),
                 transfer=download.TransferLimits.from_config(data))
    if data.source == "synthetic":
        return SyntheticSource(clips_per_class=data.synthetic.clips_per_class,
                               seconds=data.synthetic.seconds, variant=data.synthetic.variant,
                               seed=data_seed(config), sr=sr, clip_seconds=data.clip_seconds)
    if data.source == "folder":
        if not data.root:
            raise DataSourceError("data.source='folder' needs a root: pass "
                                  "--config.data.root=PATH. " + GTZAN_HELP)
        return FolderSource(data.root, home=data.home, **checks)
    if data.source == "gtzan":
        root = gtzan.fetch_gtzan(urls=tuple(data.gtzan.urls), sha256=data.gtzan.sha256,
                                 **fetch)
        return FolderSource(root, home=data.home, **checks)
    if data.source == "fma":
        tracks_csv, audio_dir = fma.fetch_fma(data.fma.subset, mirrors=tuple(data.fma.mirrors),
                                              sha1=dict(data.fma.sha1), **fetch)
        return fma.FmaSource(tracks_csv, audio_dir, subset=data.fma.subset, home=data.home,
                             **checks)
    if data.source == "tfds":
        return tfds_gtzan.TfdsSource(data.tfds_dir, **checks)
    raise DataSourceError(f"unknown data source {data.source!r}; expected one of {SOURCES}")


def labels_of(clips: Sequence[ClipRef]) -> np.ndarray:
    return np.array([c.label for c in clips], dtype=np.int32)
