"""Check a data set before any training: classes, clip counts, duration, and every file
that cannot be used, with why (the `DataReport` every run also writes).

    python -m jaxgenre.data.inventory --root=/path/to/gtzan [--json=report.json]
    python -m jaxgenre.data.inventory --source=tfds --tfds_dir=~/tensorflow_datasets

It exits 0 when every class has at least one usable clip, 1 (with the reason) when one
has none, and 2 on a usage error (a missing folder, no audio in it), with one line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from jaxgenre import errors
from jaxgenre.data import sources


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxgenre.data.inventory",
        description="Check a data set: classes, clip counts, duration, and every rejected "
                    "file with its reason.")
    parser.add_argument("--source", default="folder", choices=sources.SOURCES)
    parser.add_argument("--root", help="GTZAN folder (or any <class>/<files> folder)")
    parser.add_argument("--tfds_dir", help="TFDS data_dir holding a prepared gtzan")
    parser.add_argument("--min_seconds", type=float, default=10.0)
    parser.add_argument("--sr", type=int, default=22050)
    parser.add_argument("--json", help="also write the report here as JSON")
    args = parser.parse_args(argv)
    try:
        source = sources.open_source(args.source, root=args.root, tfds_dir=args.tfds_dir,
                                     sr=args.sr, min_seconds=args.min_seconds)
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
    sys.exit(main())
