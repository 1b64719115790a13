"""Bad data: one clear line on stderr naming the problem, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.support.cli import invoke


def run_train(*args):
    return invoke("train", *args)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    # Progress lines may come first; the error itself is exactly one line, and the last one.
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in errors[0]


def test_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    result = run_train(str(tmp_path / "empty.csv"), "--target", "y", "-o", str(tmp_path / "out"))
    assert_one_line_error(result, "empty.csv is empty")
    assert not (tmp_path / "out").exists()


def test_unknown_target_column(tmp_path, table_csv):
    result = run_train(str(table_csv), "--target", "price", "-o", str(tmp_path / "out"))
    assert_one_line_error(result, "unknown target column 'price'", "columns are: size, colour, weight, label")


def test_single_class(tmp_path):
    pd.DataFrame({"a": range(10), "label": ["cat"] * 10}).to_csv(tmp_path / "one.csv", index=False)
    result = run_train(str(tmp_path / "one.csv"), "--target", "label", "-o", str(tmp_path / "out"))
    assert_one_line_error(result, "single class ('cat')")


def test_single_image_class(tmp_path, image_folder):
    result = run_train(str(image_folder / "dark"), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, "no images found")  # a class folder instead of the root: no sub-folders


def test_text_target_for_regression(tmp_path, table_csv):
    result = run_train(str(table_csv), "--target", "label", "--task", "regression", "-o", str(tmp_path / "o"))
    assert_one_line_error(result, "target column 'label' is not numeric", "--task classification")


def test_unreadable_image(tmp_path, image_folder_factory):
    root = image_folder_factory(tmp_path / "photos", per_class=4)
    (root / "light" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really an image")
    result = run_train(str(root), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, "cannot read image", "broken.png", "remove or replace the file")


def test_too_few_examples_per_class(tmp_path):
    pd.DataFrame({"a": range(12), "label": ["a"] * 10 + ["b"] * 2}).to_csv(tmp_path / "rare.csv", index=False)
    result = run_train(str(tmp_path / "rare.csv"), "--target", "label", "-o", str(tmp_path / "out"))
    assert_one_line_error(result, "class 'b' has only 2 example(s)")


def test_npz_without_labels(tmp_path):
    np.savez(tmp_path / "data.npz", x=np.zeros((10, 3)))
    result = run_train(str(tmp_path / "data.npz"), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, "lacks array 'y'")


def test_missing_path_and_unknown_suffix(tmp_path):
    assert_one_line_error(run_train(str(tmp_path / "nope.csv")), "does not exist")
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(run_train(str(tmp_path / "notes.txt")), "unsupported data file 'notes.txt'")


@pytest.mark.parametrize("args", [[], ["somewhere.csv", "--dataset", "wine"]])
def test_data_or_dataset_required(args):
    assert_one_line_error(run_train(*args), "give either a data path or --dataset")


@pytest.mark.parametrize("column, value", [("a", "inf"), ("a", "-inf"), ("label", "inf")])
def test_infinite_values_are_refused_not_trained_on(tmp_path, column, value):
    """Before: mean Infinity in labels.json, accuracy 0.5 and exit 0. Gaps (empty cells) stay allowed."""
    rows = ["a,b,label"] + [f"{i},{i % 3},{i % 2}" for i in range(40)] + [""]
    rows[5] = f"{value},1,0" if column == "a" else f"4,1,{value}"
    (tmp_path / "inf.csv").write_text("\n".join(rows))
    result = run_train(str(tmp_path / "inf.csv"), "--target", "label", "--task", "regression", "-o",
                       str(tmp_path / "out"))
    assert_one_line_error(result, f"column '{column}' has 1 infinite value(s)", "data row 4")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("array, value, message", [
    ("x", np.inf, "'x' has 1 infinite value(s) (first in row 2)"),
    ("y", -np.inf, "'y' has 1 NaN or infinite value(s) (first in row 2)"),
    ("y", np.nan, "'y' has 1 NaN or infinite value(s) (first in row 2)"),
])
def test_non_finite_arrays_are_refused(tmp_path, array, value, message):
    arrays = {"x": np.random.default_rng(0).normal(size=(30, 3)), "y": np.arange(30.0)}
    arrays[array][(2, 1) if array == "x" else 2] = value
    np.savez(tmp_path / "data.npz", **arrays)
    result = run_train(str(tmp_path / "data.npz"), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, message)


@pytest.mark.parametrize("case", ["object arrays", "declared 1 GB", "empty file"])
def test_hostile_npz_files_get_one_line(tmp_path, case):
    path = tmp_path / "data.npz"
    if case == "object arrays":
        np.savez(path, x=np.array([{"a": 1}] * 3, dtype=object), y=np.arange(3))
        message = "holds Python objects"
    elif case == "declared 1 GB":
        from tests.security.hostile_files import zip_bomb_npz

        zip_bomb_npz(path, names=("x", "y"))
        message = "beyond the limit"
    else:
        path.write_bytes(b"")
        message = "the file is empty"
    result = run_train(str(path), "-o", str(tmp_path / "out"))
    assert_one_line_error(result, message)
