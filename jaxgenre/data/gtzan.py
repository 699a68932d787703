"""GTZAN fetched, verified and unpacked: `--config.data.source=gtzan`.

The original `genres.tar.gz` (1.2 GB; 1000 `.au` files, 22050 Hz mono) is fetched from
the first mirror in `config.data.gtzan.urls` that gives a file with the pinned sha256,
unpacked once into `<data home>/gtzan/` by the one safe extractor (`archive.extract`,
within `config.data.archive`'s caps; the fetch within `config.data.download`'s), and
read as a folder source (every file validated, the unusable ones listed in the data
report). Every process of a multi-process run calls this: one fetches and unpacks, the
others wait for it (`filelock`).

The mirrors and the pin live in configs/base.py (`config.data.gtzan`), which says where
they come from.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from jaxgenre.data import archive, download

ARCHIVE = "genres.tar.gz"


def fetch_gtzan(*, home: Optional[str] = None, urls: Sequence[str],
                sha256: Optional[str], progress: bool = True,
                limits: Optional[archive.Limits] = None,
                transfer: Optional[download.TransferLimits] = None) -> str:
    """The folder GTZAN is unpacked in (`<home>/gtzan`), fetching and unpacking it
    first if needed; raises `DownloadError` naming the mirrors tried, `ArchiveError`
    naming the archive and member. `limits` / `transfer`: the caps (defaults if None)."""
    home = download.data_home(home)
    target = os.path.join(home, "gtzan")
    if os.path.isdir(target):  # unpacked before (extract renames only a complete folder)
        return target
    asset = download.Asset(name="GTZAN (genres.tar.gz)", file=ARCHIVE, urls=tuple(urls),
                           sha256=sha256)
    transfer = transfer or download.TransferLimits.from_config()
    path = download.fetch(asset, home, progress=progress, max_bytes=transfer.max_bytes,
                          deadline=transfer.deadline_seconds)
    return archive.extract(path, target, limits=limits)
