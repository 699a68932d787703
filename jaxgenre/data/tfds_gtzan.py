"""GTZAN through TensorFlow Datasets: read a prepared copy, or prepare one from a folder.

Reading uses `tfds.data_source('gtzan', data_dir=...)`: random access to array_record
files, no TensorFlow graph and no tf.data. A copy prepared in the older tfrecord format
cannot be read that way; it is then read once, in order, with `tfds.load` (TensorFlow).

TFDS's own download URL for gtzan has been dead since 2023, so a copy has to be
prepared from files you have (the Kaggle copy, `genres_original/<genre>/*.wav`, as a
folder or as the downloaded archive):

    python -m jaxgenre.data.tfds_gtzan --from=/path/to/gtzan --tfds_dir=~/tensorflow_datasets

This runs TFDS's real `gtzan` builder (same features, labels and file names) with its
download step pointed at the local folder, and writes array_record files. An archive
is unpacked first by the project's one safe extractor (`archive.extract`: members
checked, sizes capped), before TensorFlow is imported. It needs
`requirements-tfds.txt` (TensorFlow, tensorflow-datasets, pydub). The builder reads
`.wav` files only: for the original `.au` tarball use `data.source=folder` instead.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Optional, Tuple

import numpy as np
from tqdm import tqdm

from jaxgenre import audio
from jaxgenre import errors
from jaxgenre.data import archive
from jaxgenre.data.folder import FolderSource
from jaxgenre.data.types import ClipRef, DataReport, DataSourceError, Source

TFDS_SR = 22050  # gtzan's Audio feature: int16-range integers at 22050 Hz
_PREPARE_HINT = ("Prepare it from a local GTZAN copy with: python -m jaxgenre.data.tfds_gtzan "
                 "--from=/path/to/gtzan --tfds_dir={dir}  (TFDS's own download URL is dead).")


def _default_dir(data_dir: Optional[str]) -> str:
    return os.path.abspath(os.path.expanduser(
        data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")))


class TfdsSource(Source):
    """The `train` split of a prepared TFDS `gtzan` (the only split it has)."""
    name = "tfds"

    def __init__(self, data_dir: Optional[str] = None, *, sr: int = 22050,
                 min_seconds: float = 10.0, clip_seconds: float = 30.0, progress: bool = True):
        super().__init__(sr=sr, clip_seconds=clip_seconds)
        import tensorflow_datasets as tfds

        self.data_dir = _default_dir(data_dir)
        if not os.path.isdir(os.path.join(self.data_dir, "gtzan")):
            raise DataSourceError(f"no prepared TFDS 'gtzan' in '{self.data_dir}'. "
                                  + _PREPARE_HINT.format(dir=self.data_dir))
        try:
            records = tfds.data_source("gtzan", data_dir=self.data_dir, split="train")
            self.reader = "tfds.data_source (array_record)"
            info = records.dataset_info
        except Exception as e:  # e.g. prepared as tfrecord: no random access
            records, info = self._read_with_tensorflow(tfds)
            self.reader = f"tfds.load (TensorFlow; data_source failed: {type(e).__name__})"
        self._records = records
        self.class_names = tuple(info.features["label"].names)
        self.report = DataReport(source="tfds", location=self.data_dir,
                                 class_names=list(self.class_names))
        self.report.notes.append(f"read with {self.reader}")
        clips = []
        for index in tqdm(range(len(records)), desc="validating tfds records", unit="clip",
                          disable=not progress):
            record = records[index]
            name = record["audio/filename"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            seconds = len(record["audio"]) / TFDS_SR
            class_name = self.class_names[int(record["label"])]
            if seconds < min_seconds:
                self.report.reject(name, f"too short: {seconds:.2f} s < min_seconds="
                                         f"{min_seconds:g} s")
                continue
            stem = os.path.splitext(os.path.basename(name))[0]
            clips.append(ClipRef(f"{class_name}/{stem}", int(record["label"]), index))
            self.report.accept(class_name, seconds)
        self.clips = tuple(clips)

    def _read_with_tensorflow(self, tfds):
        dataset, info = tfds.load("gtzan", data_dir=self.data_dir, split="train",
                                  with_info=True, download=False)
        return list(tfds.as_numpy(dataset)), info

    def _load(self, ref: ClipRef) -> np.ndarray:
        samples = np.asarray(self._records[ref.locator]["audio"])
        y = (samples / 32768.0).astype(np.float32)
        return audio.resample(y, orig_sr=TFDS_SR, target_sr=self.sr)

    def identity(self) -> dict:
        return {"source": "tfds", "data_dir": self.data_dir}


def prepare_from_folder(folder: str, data_dir: Optional[str] = None,
                        file_format: str = "array_record",
                        limits: Optional[archive.Limits] = None) -> Tuple[str, DataReport]:
    """Runs TFDS's `gtzan` builder on a local GTZAN folder or archive (.tar.gz, .zip,
    unpacked by `archive.extract` within `limits`); returns (data_dir, report).

    Files are validated first (`FolderSource`): the builder would stop at the first file
    it cannot encode (GTZAN's jazz.00054.wav), so only the decodable `.wav` files are
    offered to it, through a staging folder of symlinks; the rest are in the report.
    """
    with tempfile.TemporaryDirectory() as scratch:
        if os.path.isfile(folder):  # an archive: genres.tar.gz, the Kaggle .zip, ...
            folder = archive.extract(folder, os.path.join(scratch, "unpacked"), limits=limits)
        return _prepare(folder, _default_dir(data_dir), file_format)


def _prepare(folder: str, data_dir: str, file_format: str) -> Tuple[str, DataReport]:
    import tensorflow_datasets as tfds
    from tensorflow_datasets.audio.gtzan import gtzan

    source = FolderSource(folder, min_seconds=0.0)
    report = source.report
    with tempfile.TemporaryDirectory() as staging:
        for ref in source.clips:
            if not ref.locator.lower().endswith(".wav"):
                report.reject(ref.clip_id, "TFDS's gtzan builder reads .wav files only")
                continue
            os.makedirs(os.path.join(staging, ref.clip_id.split("/")[0]), exist_ok=True)
            os.symlink(ref.locator, os.path.join(staging, ref.clip_id + ".wav"))

        class LocalGTZAN(gtzan.GTZAN, skip_registration=True):
            """TFDS's gtzan builder, reading the staging folder instead of downloading."""
            name = "gtzan"

            def _split_generators(self, dl_manager):
                return [tfds.core.SplitGenerator(name=tfds.Split.TRAIN,
                                                 gen_kwargs={"path": staging})]

        LocalGTZAN(data_dir=data_dir, file_format=file_format).download_and_prepare()
    return data_dir, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxgenre.data.tfds_gtzan",
                                     description="Prepare TFDS 'gtzan' from a local folder.")
    parser.add_argument("--from", dest="folder", required=True,
                        help="GTZAN folder with genres_original/<genre>/*.wav, or its archive")
    parser.add_argument("--tfds_dir", help="TFDS data_dir (default ~/tensorflow_datasets)")
    args = parser.parse_args(argv)
    try:
        data_dir, report = prepare_from_folder(args.folder, args.tfds_dir)
    except (errors.UserError, FileNotFoundError) as e:
        return errors.report(e)
    print(report.format())
    print(f"prepared gtzan in {data_dir}; use --config.data.source=tfds "
          f"--config.data.tfds_dir={data_dir}")
    return 0


if __name__ == "__main__":
    from jaxgenre import cli

    cli.run(main)
