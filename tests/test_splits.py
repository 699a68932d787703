"""Splits: stratified, disjoint, complete, deterministic; the fault-filtered lists."""

import numpy as np
import pytest
from ml_collections import config_dict

from jaxgenre.data import splits
from jaxgenre.data.types import DataReport

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
          "reggae", "rock"]
IDS = [f"{g}/{g}.{i:05d}" for g in GENRES for i in range(100)]
LABELS = np.repeat(np.arange(10), 100)


def _ids(split, ids=IDS):
    return {p: {ids[i] for i in idx} for p, idx in split.items()}


def _assert_partition(split, n):
    every = np.concatenate(list(split.values()))
    assert every.size == n and np.unique(every).size == n  # disjoint and complete


def test_random_split_is_stratified_disjoint_and_deterministic():
    split = splits.random_split(IDS, LABELS, fractions=(0.8, 0.1, 0.1), seed=3)
    _assert_partition(split, 1000)
    for part, share in (("train", 80), ("valid", 10), ("test", 10)):
        assert np.bincount(LABELS[split[part]], minlength=10).tolist() == [share] * 10
    again = splits.random_split(IDS, LABELS, fractions=(0.8, 0.1, 0.1), seed=3)
    assert all(np.array_equal(split[p], again[p]) for p in splits.PARTS)
    other = splits.random_split(IDS, LABELS, fractions=(0.8, 0.1, 0.1), seed=4)
    assert _ids(other)["test"] != _ids(split)["test"]


def test_split_depends_on_clip_ids_not_on_their_order():
    perm = np.random.default_rng(0).permutation(1000)
    shuffled_ids = [IDS[i] for i in perm]
    a = _ids(splits.random_split(IDS, LABELS, seed=1))
    b = _ids(splits.random_split(shuffled_ids, LABELS[perm], seed=1), shuffled_ids)
    assert a == b


def test_small_classes_still_get_valid_and_test_clips():
    split = splits.random_split(IDS[:4] + IDS[100:104], [0] * 4 + [1] * 4, seed=0)
    assert all(len(split[p]) == 2 for p in ("valid", "test"))


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="summing to 1"):
        splits.random_split(IDS, LABELS, fractions=(0.8, 0.3, 0.1))


def test_kfold_test_parts_cover_every_clip_once():
    seen = []
    for fold in range(10):
        split = splits.kfold_split(IDS, LABELS, folds=10, fold=fold, valid_fraction=1 / 9,
                                   seed=0)
        _assert_partition(split, 1000)
        assert np.bincount(LABELS[split["test"]], minlength=10).tolist() == [10] * 10
        assert np.bincount(LABELS[split["valid"]], minlength=10).tolist() == [10] * 10
        seen.append(split["test"])
    all_test = np.concatenate(seen)
    assert np.unique(all_test).size == 1000
    with pytest.raises(ValueError, match="fold < folds"):
        splits.kfold_split(IDS, LABELS, folds=10, fold=10)


def test_fault_filtered_lists_are_packaged_and_disjoint():
    lists = splits.fault_filtered_lists()
    assert {p: len(v) for p, v in lists.items()} == {"train": 443, "valid": 197, "test": 290}
    assert not set(lists["train"]) & set(lists["valid"])
    assert not set(lists["train"]) & set(lists["test"])
    assert not set(lists["valid"]) & set(lists["test"])
    assert "jazz/jazz.00054" in lists["train"]
    assert all(cid.split("/")[0] in GENRES for v in lists.values() for cid in v)


def test_fault_filtered_split_reports_what_the_data_set_lacks():
    usable = [cid for cid in IDS if cid != "jazz/jazz.00054"]
    report = DataReport(source="folder")
    split = splits.fault_filtered_split(usable, report)
    assert [len(split[p]) for p in splits.PARTS] == [442, 197, 290]
    assert [r["file"] for r in report.rejected] == ["jazz/jazz.00054"]
    assert "70 usable clips are not in its lists" in report.notes[0]  # 999 - 929
    _assert_partition({p: v for p, v in split.items()}, 929)


def test_make_split_follows_the_config():
    data = config_dict.ConfigDict({"split": "kfold", "fractions": (0.8, 0.1, 0.1), "folds": 5,
                                   "fold": 2})
    split = splits.make_split(data, IDS, LABELS, seed=0)
    # 20 test clips per class; valid = round(0.1 / 0.9 * 80) = 9 of the other 80.
    assert len(split["test"]) == 200 and len(split["valid"]) == 90
    data.split = "leave_one_out"
    with pytest.raises(ValueError, match="unknown data.split"):
        splits.make_split(data, IDS, LABELS, seed=0)


# --- issue 21 item 4: a clip id named twice never lands in two parts ---------------------

def test_every_split_refuses_clip_ids_named_twice():
    """Before: random and k-fold splits put the two rows of jazz/jazz.00001 in different
    parts (the clip trained on and tested on); now every split refuses, naming the id."""
    ids = IDS[:10] + [IDS[3]]  # blues/blues.00003 twice
    labels = [0] * 11
    data = config_dict.ConfigDict({"split": "random", "fractions": (0.8, 0.1, 0.1),
                                   "folds": 5, "fold": 0})
    calls = {
        "random": lambda: splits.random_split(ids, labels, seed=0),
        "kfold": lambda: splits.kfold_split(ids, labels, folds=5, fold=0),
        "official": lambda: splits.official_split(ids, {i: "train" for i in ids}),
        "fault_filtered": lambda: splits.fault_filtered_split(ids),
        "make_split": lambda: splits.make_split(data, ids, labels, seed=0),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"clip id.*blues/blues\.00003.*twice"):
            call()


def test_fault_filtered_lists_naming_a_file_twice_are_refused(tmp_path):
    lists = splits.fault_filtered_lists()
    for part in splits.PARTS:
        text = "".join(f"{cid}.wav\n" for cid in lists[part])
        if part == "test":
            text += "blues/blues.00029.wav\n"  # also in train
        (tmp_path / f"gtzan_fault_filtered_{part}.txt").write_text(text)
    with pytest.raises(ValueError, match=r"blues/blues\.00029.*train.*test"):
        splits.fault_filtered_lists(str(tmp_path))
    with pytest.raises(ValueError, match=r"blues/blues\.00029"):
        splits.fault_filtered_split(IDS, folder=str(tmp_path))
    # The packaged lists: every file once, in one part.
    named = [cid for part in splits.PARTS for cid in lists[part]]
    assert len(named) == len(set(named)) == 930
