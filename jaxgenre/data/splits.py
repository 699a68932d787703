"""Train / validation / test partitions: random, k-fold, and GTZAN's fault-filtered split.

Every split is a pure function of (clip ids, labels, seed) and returns, for each part,
indices into the clip list it was given. The clips are ordered by id first, so the
order a source happens to list them in (TFDS shuffles records) changes nothing.
Random and k-fold splits are stratified: each class is divided on its own.

Every split refuses a clip list that names a clip id twice (`_require_unique`): two rows
of one clip could land in two parts, the clip trained on and tested on. Sources never
produce one (`types.unique_clips`); the check keeps any other caller honest. The packaged
fault-filtered lists are checked the same way: a file named twice is an error.
"""

from __future__ import annotations

import collections
import importlib.resources
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from jaxgenre.data.types import DataReport
from jaxgenre.errors import UserError

PARTS = ("train", "valid", "test")
SPLITS = ("random", "kfold", "fault_filtered", "official")


def _require_unique(clip_ids: Sequence[str]) -> None:
    """Raises, naming them, if any clip id is in `clip_ids` more than once."""
    twice = sorted(cid for cid, n in collections.Counter(clip_ids).items() if n > 1)
    if twice:
        shown = ", ".join(twice[:5]) + (f" and {len(twice) - 5} more" if len(twice) > 5 else "")
        raise UserError(f"clip id(s) {shown} named twice in the clip list to split: a clip "
                        f"could land in two parts; give each clip once (sources list a "
                        f"second file with the same id in the data report instead)")


def _by_class(clip_ids: Sequence[str], labels: np.ndarray):
    """Per class: indices of its clips, sorted by clip id."""
    order = np.argsort(np.asarray(clip_ids, dtype=object), kind="stable")
    labels = np.asarray(labels)
    return {int(c): order[labels[order] == c] for c in np.unique(labels)}


def _finish(parts: Dict[str, List[np.ndarray]], clip_ids) -> Dict[str, np.ndarray]:
    ids = np.asarray(clip_ids, dtype=object)
    out = {}
    for name in PARTS:
        idx = np.concatenate(parts[name]).astype(np.int64) if parts[name] else np.zeros(0, np.int64)
        out[name] = idx[np.argsort(ids[idx], kind="stable")] if idx.size else idx
    return out


def _share(fraction: float, n: int) -> int:
    """round(fraction * n), but at least one clip for a non-zero fraction of a class of
    three or more, so a small data set never gets an empty validation or test part."""
    share = int(round(fraction * n))
    return max(share, 1) if fraction > 0 and n >= 3 else share


def random_split(clip_ids: Sequence[str], labels, *, fractions=(0.8, 0.1, 0.1),
                 seed: int = 0) -> Dict[str, np.ndarray]:
    """Stratified: each class's clips shuffled with (seed, class) and cut by `fractions`."""
    _require_unique(clip_ids)
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise UserError(f"data.fractions must be three non-negative numbers (train, valid, "
                         f"test) summing to 1, got {tuple(fractions)}")
    parts = {p: [] for p in PARTS}
    for c, idx in _by_class(clip_ids, labels).items():
        idx = np.random.default_rng([seed, c]).permutation(idx)
        n_valid, n_test = (_share(f, idx.size) for f in fractions[1:])
        n_train = idx.size - n_valid - n_test
        parts["train"].append(idx[:n_train])
        parts["valid"].append(idx[n_train:n_train + n_valid])
        parts["test"].append(idx[n_train + n_valid:])
    return _finish(parts, clip_ids)


def kfold_split(clip_ids: Sequence[str], labels, *, folds: int = 10, fold: int = 0,
                valid_fraction: float = 1 / 9, seed: int = 0) -> Dict[str, np.ndarray]:
    """Stratified k-fold: part `fold` of each class is the test set; a seeded
    `valid_fraction` of the remaining clips of each class is the validation set."""
    _require_unique(clip_ids)
    if folds < 2 or not 0 <= fold < folds:
        raise UserError(f"k-fold needs folds >= 2 and 0 <= fold < folds, got folds={folds}, "
                         f"fold={fold}")
    parts = {p: [] for p in PARTS}
    for c, idx in _by_class(clip_ids, labels).items():
        idx = np.random.default_rng([seed, c]).permutation(idx)
        in_fold = (np.arange(idx.size) % folds) == fold
        rest = np.random.default_rng([seed, c, fold]).permutation(idx[~in_fold])
        n_valid = _share(valid_fraction, rest.size)
        parts["test"].append(idx[in_fold])
        parts["valid"].append(rest[:n_valid])
        parts["train"].append(rest[n_valid:])
    return _finish(parts, clip_ids)


def fault_filtered_lists(folder: Optional[str] = None) -> Dict[str, List[str]]:
    """The Kereliuk/Sturm lists, as clip ids (`genre/genre.000NN`): the packaged ones, or
    `gtzan_fault_filtered_{train,valid,test}.txt` in `folder`. A file named twice (in
    one list or in two) is an error naming it and its lists."""
    where = (importlib.resources.files("jaxgenre.data") / "split_lists" if folder is None
             else None)
    lists, seen = {}, collections.defaultdict(list)
    for part in PARTS:
        name = f"gtzan_fault_filtered_{part}.txt"
        if where is not None:
            text = (where / name).read_text()
        else:
            with open(os.path.join(folder, name)) as f:
                text = f.read()
        lists[part] = [line.strip().rsplit(".", 1)[0] for line in text.splitlines()
                       if line.strip()]
        for cid in lists[part]:
            seen[cid].append(part)
    twice = {cid: parts for cid, parts in seen.items() if len(parts) > 1}
    if twice:
        cid, parts = sorted(twice.items())[0]
        more = f" (and {len(twice) - 1} more file(s))" if len(twice) > 1 else ""
        raise UserError(f"the fault-filtered split lists in "
                        f"{folder or 'jaxgenre/data/split_lists'} name {cid} more than once "
                        f"({', '.join(parts)}){more}: each file belongs to one part; "
                        f"restore the lists")
    return lists


def fault_filtered_split(clip_ids: Sequence[str], report: Optional[DataReport] = None, *,
                         folder: Optional[str] = None) -> Dict[str, np.ndarray]:
    """The artist- and fault-filtered GTZAN partition (443 / 197 / 290 files); `folder`
    as in `fault_filtered_lists`.

    Listed files that are not among `clip_ids` (missing from the folder, or rejected
    when it was validated, like jazz.00054) go into `report`, one entry each.
    """
    _require_unique(clip_ids)
    lists = fault_filtered_lists(folder)
    position = {cid: i for i, cid in enumerate(clip_ids)}
    parts = {p: [] for p in PARTS}
    named = set()
    for part, listed in lists.items():
        found = [position[cid] for cid in listed if cid in position]
        parts[part].append(np.asarray(found, dtype=np.int64))
        named.update(listed)
        if report is not None:
            for cid in listed:
                if cid not in position:
                    report.reject(cid, f"named by the fault-filtered split ({part}) but not "
                                       f"usable in this data set (missing or rejected above)")
    if report is not None:
        outside = sum(cid not in named for cid in clip_ids)
        report.notes.append(f"fault_filtered split: {outside} usable clips are not in its "
                            f"lists and are left out by design")
    return _finish(parts, clip_ids)


def official_split(clip_ids: Sequence[str], assignment: Dict[str, str]
                   ) -> Dict[str, np.ndarray]:
    """A data set's own split (FMA's `set.split`): `assignment` maps clip id → part."""
    _require_unique(clip_ids)
    parts = {p: [np.asarray([i for i, cid in enumerate(clip_ids)
                             if assignment.get(cid) == p], dtype=np.int64)] for p in PARTS}
    return _finish(parts, clip_ids)


def make_split(data_config, clip_ids: Sequence[str], labels, seed: int,
               report: Optional[DataReport] = None, *, kind: Optional[str] = None,
               official: Optional[Dict[str, str]] = None) -> Dict[str, np.ndarray]:
    """The split `config.data` asks for (`kind` overrides `data.split`; `official` is
    the source's own assignment, for kind 'official')."""
    kind = kind or data_config.split
    if kind == "official":
        if official is None:
            raise UserError("data.split='official' is the split a data set ships with (FMA's "
                            "set.split); this source has none: use random, kfold or "
                            "fault_filtered")
        return official_split(clip_ids, official)
    if kind == "random":
        return random_split(clip_ids, labels, fractions=data_config.fractions, seed=seed)
    if kind == "kfold":
        if data_config.fold is None:
            raise UserError("data.split='kfold' needs data.fold (0 .. folds-1) for one run; "
                             "launch.py runs every fold when it is not set")
        train, valid, _ = data_config.fractions
        return kfold_split(clip_ids, labels, folds=data_config.folds, fold=data_config.fold,
                           valid_fraction=valid / (train + valid), seed=seed)
    if kind == "fault_filtered":
        return fault_filtered_split(clip_ids, report)
    raise UserError(f"unknown data.split {kind!r}; expected one of {SPLITS}")
