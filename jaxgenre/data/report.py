"""The data report: what a data set holds and every file it could not use, with why.

Every run builds one (sources fill it in while they validate), prints it at start-up
and writes it as JSON to the work directory, so nothing is ever dropped silently.

As a command, it checks a data set before any training:

    python -m jaxgenre.data.report --root=/path/to/gtzan [--json=report.json]
    python -m jaxgenre.data.report --source=tfds --tfds_dir=~/tensorflow_datasets

It exits 0 when every class has at least one usable clip, and 1 (with the reason)
otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Dict, List, Optional, Sequence


@dataclasses.dataclass
class DataReport:
    """Usable clips per class and every rejected file with its reason."""
    source: str
    location: Optional[str] = None
    class_names: List[str] = dataclasses.field(default_factory=list)
    clip_counts: Dict[str, int] = dataclasses.field(default_factory=dict)
    total_seconds: float = 0.0
    rejected: List[Dict[str, str]] = dataclasses.field(default_factory=list)
    notes: List[str] = dataclasses.field(default_factory=list)

    def reject(self, item: str, reason: str) -> None:
        self.rejected.append({"file": item, "reason": reason})

    def accept(self, class_name: str, seconds: float) -> None:
        self.clip_counts[class_name] = self.clip_counts.get(class_name, 0) + 1
        self.total_seconds += seconds

    @property
    def usable(self) -> int:
        return sum(self.clip_counts.values())

    def empty_classes(self) -> List[str]:
        return [c for c in self.class_names if self.clip_counts.get(c, 0) == 0]

    def ok(self) -> bool:
        return bool(self.class_names) and not self.empty_classes()

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self) | {"usable_clips": self.usable}

    def write_json(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def format(self) -> str:
        where = f" at {self.location}" if self.location else ""
        lines = [f"data: {self.source}{where}: {self.usable} usable clips in "
                 f"{len(self.class_names)} classes, {self.total_seconds / 3600:.2f} h of audio"]
        width = max((len(c) for c in self.class_names), default=0)
        for name in self.class_names:
            lines.append(f"  {name:<{width}}  {self.clip_counts.get(name, 0):5d}")
        if self.rejected:
            lines.append(f"  rejected ({len(self.rejected)}):")
            lines.extend(f"    {r['file']}: {r['reason']}" for r in self.rejected)
        else:
            lines.append("  rejected: none")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from jaxgenre.data import sources  # the CLI needs the sources; the report class does not

    parser = argparse.ArgumentParser(
        prog="python -m jaxgenre.data.report",
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
    except (sources.DataSourceError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
