"""What opening a folder source costs the first time and every time after (issue 23,
item 4): each open validates every file, and the verdicts of the files it accepted are
remembered in the data home (`jaxgenre/data/audio_checks.py`), so the second open only
stats the files.

    python benchmarks/source_open.py --root=DIR [--opens=2] [--home=DIR] [--sr=22050]
                                     [--min_seconds=10]

Opens `--root` `--opens` times (a 10-cell grid: 10) as a run does (`sources.create_source` of a config with
`data.source=folder`), with the data home `--home` (default: a new temporary folder, so
the first open decodes everything), checks every open found the same clips, and ends with
the line `first X s, second Y s, ratio R`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import base  # noqa: E402
from jaxgenre.data import sources  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="a GTZAN-layout or <class>/<files> folder")
    parser.add_argument("--home", default=None, help="data home (default: a temporary folder)")
    parser.add_argument("--opens", type=int, default=2)
    parser.add_argument("--sr", type=int, default=22050)
    parser.add_argument("--min_seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    config = base.get_config()
    home = args.home or tempfile.mkdtemp(prefix="jaxgenre-source-open-")
    config.data.update(source="folder", root=args.root, home=home,
                       min_seconds=args.min_seconds)
    config.features.sr = args.sr
    try:
        times, clips = [], []
        for _ in range(max(args.opens, 2)):
            start = time.perf_counter()
            source = sources.create_source(config, progress=False)
            times.append(time.perf_counter() - start)
            clips.append(source.clips)
            print(f"open {len(times)}: {len(source.clips)} clips, "
                  f"{len(source.report.rejected)} rejected, {times[-1]:.2f} s; "
                  + next((n for n in source.report.notes if n.startswith("audio checks")),
                         ""))
        if any(c != clips[0] for c in clips):
            sys.exit("the opens found different clips")
        print(f"{len(times)} opens: {sum(times):.2f} s in all")
        print(f"first {times[0]:.2f} s, second {times[1]:.2f} s, "
              f"ratio {times[0] / max(times[1], 1e-9):.1f}")
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
