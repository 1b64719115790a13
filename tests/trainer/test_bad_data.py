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
