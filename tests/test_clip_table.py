"""test_predictions.csv read back and aligned: files a run did not write whole, or that
someone edited, are refused in one line naming the file (and line or clip); tables with a
clip twice are never aligned into rows nothing was written to."""

import numpy as np
import pytest

from jaxgenre.results import clip_table
from jaxgenre.errors import UserError

CLASSES = ("blues", "jazz")
HEADER = "clip,label,prediction,p_blues,p_jazz\n"


def _table(ids, labels):
    probs = np.linspace(0.1, 0.9, len(ids))
    return clip_table.ClipTable(tuple(ids), np.asarray(labels),
                                np.stack([probs, 1 - probs], axis=1), CLASSES)


@pytest.mark.parametrize("body, needle", [
    ("", "no clips"),  # header only: a run that wrote no test row
    ("a,blues,blues,nan,0.5\n", "line 2: a probability is not a finite number"),
    ("a,blues,blues,0.5,inf\n", "line 2: a probability is not a finite number"),
    ("a,blues,blues,1.5,-0.5\n", "line 2: the probabilities must lie in \\[0, 1\\]"),
    ("a,blues,blues,0.5,0.4\n", "line 2: .*sum to 1 .*they sum to 0.9")])
def test_a_table_without_usable_rows_is_refused_naming_the_file(tmp_path, body, needle):
    path = tmp_path / clip_table.FILE_NAME
    path.write_text(HEADER + body)
    with pytest.raises(UserError, match=f"{path}.*{needle}"):
        clip_table.read(str(path))


def test_a_table_that_is_not_text_is_refused_naming_the_file(tmp_path):
    path = tmp_path / clip_table.FILE_NAME
    path.write_bytes(HEADER.encode() + b"\xff\xfe,blues,blues,0.5,0.5\n")
    with pytest.raises(UserError, match=f"{path}.*not a UTF-8 text file"):
        clip_table.read(str(path))
    with pytest.raises(UserError, match=f"{tmp_path}.*cannot be read"):
        clip_table.read(str(tmp_path))  # a folder


@pytest.mark.parametrize("which", [0, 1])
def test_aligning_tables_with_a_clip_twice_is_refused_naming_the_table_and_the_clip(which):
    """One table lists clip x a second time: the same set of ids as the other."""
    tables = [_table(["x", "y", "z"], [0, 1, 0]), _table(["z", "y", "x"], [0, 1, 0])]
    tables[which] = _table(["x", "y", "z", "x"], [0, 1, 0, 0])
    names = ["runs/a", "runs/b"]
    with pytest.raises(UserError, match=f"{names[which]} lists clip 'x' twice"):
        clip_table.aligned_probabilities(tables, names)


def test_equal_length_tables_with_swapped_duplicates_are_refused():
    """[x, x, y] against [x, y, y]: the same set of ids and the same length, so every
    earlier check passed and one row of the aligned probabilities was never written."""
    a, b = _table(["x", "x", "y"], [0, 0, 1]), _table(["x", "y", "y"], [0, 1, 1])
    with pytest.raises(UserError, match="runs/a lists clip 'x' twice"):
        clip_table.aligned_probabilities([a, b], ["runs/a", "runs/b"])
    with pytest.raises(UserError, match="runs/b lists clip 'y' twice"):
        clip_table.aligned_probabilities([b, b], ["runs/b", "runs/c"])


def test_aligned_rows_follow_the_first_tables_order():
    a = _table(["x", "y", "z"], [0, 1, 0])
    b = _table(["z", "x", "y"], [0, 0, 1])
    first, second = clip_table.aligned_probabilities([a, b], ["a", "b"])
    np.testing.assert_array_equal(first, a.probabilities)
    np.testing.assert_array_equal(second, b.probabilities[[1, 2, 0]])


def test_a_table_saved_with_a_byte_order_mark_reads_as_the_same_table(tmp_path):
    """Excel saves CSV as UTF-8 with a BOM; the table is the same table."""
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    body = HEADER + "a,blues,blues,0.75,0.25\nb,jazz,jazz,0.125,0.875\n"
    plain.write_text(body)
    marked.write_bytes(b"\xef\xbb\xbf" + body.encode())
    a, b = clip_table.read(str(plain)), clip_table.read(str(marked))
    assert b.class_names == CLASSES and b.clip_ids == ("a", "b")
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    np.testing.assert_array_equal(b.probabilities, [[0.75, 0.25], [0.125, 0.875]])
