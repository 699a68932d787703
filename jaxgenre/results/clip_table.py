"""The per-clip test predictions every run saves beside results.json, and reads back
for ensembles (and comparisons of runs): `test_predictions.csv`, one row per test clip,

    clip,label,prediction,p_<class 0>,p_<class 1>,...
    blues/blues.00012.wav,blues,blues,0.91,0.01,...

(`label` and `prediction` are class names; the `p_` columns are the clip's
probabilities, in the run's class order, written with 17 significant digits so a float64
reads back exactly. `prediction` is the most probable class, written for readers; the
probabilities are what is read back.)"""

from __future__ import annotations

import collections
import csv
import dataclasses
import math
from typing import List, Sequence, Tuple

import numpy as np

from jaxgenre.errors import UserError

FILE_NAME = "test_predictions.csv"
HEADER = ("clip", "label", "prediction")
# A row's probabilities may sum to 1 within this (tables written by other tools round
# them; a run's own are within ~1e-7).
SUM_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class ClipTable:
    clip_ids: Tuple[str, ...]
    labels: np.ndarray  # (clips,) class indices into class_names
    probabilities: np.ndarray  # (clips, classes) float64
    class_names: Tuple[str, ...]


def write(path: str, table: ClipTable) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow([*HEADER, *(f"p_{name}" for name in table.class_names)])
        for clip_id, label, probs in zip(table.clip_ids, table.labels, table.probabilities):
            out.writerow([clip_id, table.class_names[int(label)],
                          table.class_names[int(np.argmax(probs))],
                          *(f"{float(p):.17g}" for p in probs)])


def read(path: str) -> ClipTable:
    """The table at `path`; a missing, unreadable or malformed file, one without rows
    (a header only) or with a probability that is not a finite number is a `UserError`
    naming it (and the line)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a BOM (Excel's) allowed
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise UserError(f"'{path}' not found: a run writes it when it finishes testing "
                        f"(runs older than this file's introduction do not have it; run "
                        f"them again, they resume from their checkpoints)") from None
    except UnicodeDecodeError:
        raise UserError(f"'{path}' is not a UTF-8 text file: not a {FILE_NAME} a run "
                        f"wrote; run it again") from None
    except (OSError, csv.Error) as e:
        raise UserError(f"'{path}' cannot be read: {getattr(e, 'strerror', None) or e}"
                        ) from None
    width = len(HEADER)
    if (not rows or tuple(rows[0][:width]) != HEADER or len(rows[0]) < width + 2
            or not all(c.startswith("p_") for c in rows[0][width:])):
        raise UserError(f"'{path}' is not a {FILE_NAME}: its header must be "
                        f"{','.join(HEADER)},p_<class name>,...")
    class_names = tuple(c[2:] for c in rows[0][width:])
    index = {name: i for i, name in enumerate(class_names)}
    ids, labels, probs = [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]) or row[1] not in index:
            raise UserError(f"'{path}' line {line}: expected {len(rows[0])} fields with a "
                            f"label among the header's classes; got {row[:3]}...")
        try:
            values = [float(v) for v in row[width:]]
        except ValueError:
            raise UserError(f"'{path}' line {line}: a probability is not a number") from None
        if not all(math.isfinite(v) for v in values):
            raise UserError(f"'{path}' line {line}: a probability is not a finite number "
                            f"(nan or inf): the run's test went wrong; run it again")
        if not (all(0.0 <= v <= 1.0 for v in values) and abs(sum(values) - 1.0) <= SUM_TOLERANCE):
            raise UserError(f"'{path}' line {line}: the probabilities must lie in [0, 1] and "
                            f"sum to 1 (within {SUM_TOLERANCE:g}); they sum to {sum(values):.6g}")
        probs.append(values)
        ids.append(row[0])
        labels.append(index[row[1]])
    if not ids:
        raise UserError(f"'{path}' has no clips (a header only): the run's test wrote no "
                        f"row; run it again")
    return ClipTable(tuple(ids), np.asarray(labels, np.int64),
                     np.asarray(probs, np.float64).reshape(len(ids), len(class_names)),
                     class_names)


def from_evaluation(per_clip, clip_ids: Sequence[str], class_names: Sequence[str]) -> ClipTable:
    """The table of `evaluate.evaluate_part(...)['per_clip']`, with the store's clip ids."""
    return ClipTable(tuple(clip_ids[int(i)] for i in per_clip["clip_index"]),
                     np.asarray(per_clip["labels"], np.int64),
                     np.asarray(per_clip["probabilities"], np.float64), tuple(class_names))


def aligned_probabilities(tables: Sequence[ClipTable], names: Sequence[str]) -> List[np.ndarray]:
    """Each table's probabilities in the first table's clip order. Tables of other
    classes, other clips or other labels, and tables listing a clip twice (which would
    leave rows of the result unwritten), are refused, naming the table (`names`)."""
    for table, name in zip(tables, names):
        counts = collections.Counter(table.clip_ids)
        twice = [clip for clip, count in counts.items() if count > 1]
        if twice:
            raise UserError(f"{name} lists clip {twice[0]!r} twice ({len(twice)} clips appear "
                            f"more than once): its {FILE_NAME} was edited or merged from "
                            f"overlapping runs; use one run's own file")
    first = tables[0]
    order = {clip: i for i, clip in enumerate(first.clip_ids)}
    out = []
    for table, name in zip(tables, names):
        if table.class_names != first.class_names:
            raise UserError(f"{name} has classes {list(table.class_names)}, {names[0]} has "
                            f"{list(first.class_names)}: compare runs of one data set")
        if set(table.clip_ids) != set(order):
            missing = len(set(order) - set(table.clip_ids))
            extra = len(set(table.clip_ids) - set(order))
            raise UserError(f"{name} tested other clips than {names[0]} ({missing} missing, "
                            f"{extra} extra): use runs with the same data, seed and split")
        rows = np.array([order[c] for c in table.clip_ids])
        labels = np.empty_like(first.labels)
        labels[rows] = table.labels
        if not np.array_equal(labels, first.labels):
            raise UserError(f"{name} labels some clips differently from {names[0]}")
        probs = np.empty_like(table.probabilities)
        probs[rows] = table.probabilities
        out.append(probs)
    return out
