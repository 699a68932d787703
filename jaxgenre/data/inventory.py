"""Check a data set before any training: classes, clip counts, duration, and every file
that cannot be used, with why (the `DataReport` every run also writes).

    python -m jaxgenre.data.inventory --root=/path/to/gtzan [--json=report.json]
    python -m jaxgenre.data.inventory --config=my_config.py   # the source a run of it opens
    python -m jaxgenre.data.inventory --source=tfds --tfds_dir=~/tensorflow_datasets

It exits 0 when every class has at least one usable clip, 1 (with the reason) when one
has none, and 2 on a usage error (a missing folder, no audio in it), with one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Optional, Sequence

from configs import base
from jaxgenre import errors
from jaxgenre.data import sources


def _config(path: Optional[str]):
    """The config a run would get from `--config=path` (configs/base.py's when None)."""
    if path is None:
        return base.get_config()
    spec = importlib.util.spec_from_file_location("inventory_config", path)
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return base.with_defaults(module.get_config())
    except (OSError, AttributeError, SyntaxError) as e:
        raise errors.UserError(f"--config={path}: cannot read a get_config() from it "
                               f"({type(e).__name__}: {e}); pass a config file such as "
                               f"configs/resnet_mel.py") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxgenre.data.inventory",
        description="Check a data set: classes, clip counts, duration, and every rejected "
                    "file with its reason.")
    parser.add_argument("--config", help="a run's config file: open exactly the source it "
                                         "would (its config.data and features.sr)")
    parser.add_argument("--source", choices=sources.SOURCES,
                        help="default: the config's, or 'folder' without --config")
    parser.add_argument("--root", help="GTZAN folder (or any <class>/<files> folder)")
    parser.add_argument("--tfds_dir", help="TFDS data_dir holding a prepared gtzan")
    parser.add_argument("--min_seconds", type=float, help="default: the config's")
    parser.add_argument("--sr", type=int, help="default: the config's features.sr")
    parser.add_argument("--json", help="also write the report here as JSON")
    args = parser.parse_args(argv)
    try:
        config = _config(args.config)
        config.data.source = args.source or (config.data.source if args.config else "folder")
        for key in ("root", "tfds_dir", "min_seconds"):
            if getattr(args, key) is not None:
                config.data[key] = getattr(args, key)
        if args.sr is not None:
            config.features.sr = args.sr
        source = sources.create_source(config)
    except (errors.UserError, FileNotFoundError) as e:
        return errors.report(e)
    print(source.report.format())
    if args.json:
        source.report.write_json(args.json)
        print(f"wrote {args.json}")
    if not source.report.ok():
        print(f"error: no usable clip for class(es) {', '.join(source.report.empty_classes())}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from jaxgenre import cli

    cli.run(main)
