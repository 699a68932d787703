"""Where clips come from, opened by name: the built-in synthetic set (the default, so
everything runs offline), a local folder (`folder.py`), GTZAN fetched and unpacked
(`gtzan.py`), FMA fetched and unpacked (`fma.py`), or TFDS `gtzan` (`tfds_gtzan.py`).
The interface they share is in `types.py`; fetching is `download.py`'s.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

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


def open_source(name: str, *, root: Optional[str] = None, tfds_dir: Optional[str] = None,
                sr: int = 22050, min_seconds: float = 10.0, clip_seconds: float = 30.0,
                clips_per_class: int = 20, synthetic_seconds: float = 30.0, seed: int = 0,
                synthetic_variant: str = "standard", home: Optional[str] = None,
                gtzan_urls: Sequence[str] = gtzan.URLS,
                gtzan_sha256: Optional[str] = gtzan.SHA256, fma_subset: str = "small",
                fma_mirrors: Sequence[str] = fma.MIRRORS, fma_sha1: Optional[dict] = None,
                progress: bool = True, archive_limits: Optional[archive.Limits] = None,
                transfer: Optional[download.TransferLimits] = None) -> Source:
    """Builds a source by name; `create_source(config)` is the config-driven form.
    'gtzan' fetches and unpacks GTZAN into the data home first (`gtzan.fetch_gtzan`);
    `archive_limits` / `transfer` cap that unpacking and fetching (None: the defaults)."""
    if name == "synthetic":
        return SyntheticSource(clips_per_class=clips_per_class, seconds=synthetic_seconds,
                               variant=synthetic_variant,
                               seed=seed, sr=sr, clip_seconds=clip_seconds)
    if name == "folder":
        if not root:
            raise DataSourceError("data.source='folder' needs a root: pass "
                                  "--config.data.root=PATH. " + GTZAN_HELP)
        return FolderSource(root, sr=sr, min_seconds=min_seconds, clip_seconds=clip_seconds,
                            progress=progress, home=home)
    if name == "gtzan":
        root = gtzan.fetch_gtzan(home=home, urls=gtzan_urls, sha256=gtzan_sha256,
                                 progress=progress, limits=archive_limits, transfer=transfer)
        return FolderSource(root, sr=sr, min_seconds=min_seconds, clip_seconds=clip_seconds,
                            progress=progress, home=home)
    if name == "fma":
        tracks_csv, audio_dir = fma.fetch_fma(fma_subset, home=home, mirrors=fma_mirrors,
                                              sha1=fma_sha1, progress=progress,
                                              limits=archive_limits, transfer=transfer)
        return fma.FmaSource(tracks_csv, audio_dir, subset=fma_subset, sr=sr,
                             min_seconds=min_seconds, clip_seconds=clip_seconds,
                             progress=progress, home=home)
    if name == "tfds":
        return tfds_gtzan.TfdsSource(tfds_dir, sr=sr, min_seconds=min_seconds,
                                     clip_seconds=clip_seconds, progress=progress)
    raise DataSourceError(f"unknown data source {name!r}; expected one of {SOURCES}")


def data_seed(config) -> int:
    """The seed of the data — the synthetic set and the split: `config.data.seed`, or
    when None `config.seed`. Fix it to train several seeds on one split (seed ensembles)."""
    seed = config.data.seed
    return config.seed if seed is None else seed


def create_source(config, progress: bool = True) -> Source:
    """The source `config.data` describes (features.sr sets the sample rate)."""
    data = config.data
    return open_source(data.source, root=data.root, tfds_dir=data.tfds_dir,
                       sr=config.features.sr, min_seconds=data.min_seconds,
                       clip_seconds=data.clip_seconds,
                       clips_per_class=data.synthetic.clips_per_class,
                       synthetic_seconds=data.synthetic.seconds, seed=data_seed(config),
                       synthetic_variant=data.synthetic.variant,
                       home=data.home, gtzan_urls=tuple(data.gtzan.urls),
                       gtzan_sha256=data.gtzan.sha256, fma_subset=data.fma.subset,
                       fma_mirrors=tuple(data.fma.mirrors), fma_sha1=dict(data.fma.sha1),
                       progress=progress, archive_limits=archive.Limits.from_config(data),
                       transfer=download.TransferLimits.from_config(data))


def labels_of(clips: Sequence[ClipRef]) -> np.ndarray:
    return np.array([c.label for c in clips], dtype=np.int32)
