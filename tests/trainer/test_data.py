"""Loading: tables, .npz, image folders and built-in data become the arrays the model is fed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edgeml.trainer import DataError, encode_records, load_data


def test_csv_is_cleaned_and_encoded(table_csv):
    raw = pd.read_csv(table_csv)
    data = load_data(str(table_csv), target="label")
    assert data.task == "classification"
    assert data.classes == ["big", "small"]
    assert len(data.y) == len(raw) - 4  # the 4 exact duplicates are gone
    assert "removed 4 exact duplicate rows" in data.notes
    assert data.features["vector"] == ["size", "colour=blue", "colour=green", "colour=red", "weight"]
    assert not np.isnan(data.x).any()
    # One-hot block: exactly one category set per row (missing colours take the most frequent one).
    assert np.all(data.x[:, 1:4].sum(axis=1) == 1)


def test_device_encoding_matches_training(table_csv):
    """encode_records (numpy only, from the labels.json spec) rebuilds the training matrix exactly."""
    data = load_data(str(table_csv), target="label")
    frame = pd.read_csv(table_csv).drop_duplicates().drop(columns=["label"])
    rows = frame.to_dict(orient="records")
    np.testing.assert_array_equal(encode_records(rows, data.features), data.x)


def test_device_encoding_of_gaps_and_unknown_categories(table_csv):
    spec = load_data(str(table_csv), target="label").features
    weight_fill = next(c["fill"] for c in spec["columns"] if c["name"] == "weight")
    vector = encode_records([{"size": 3.5, "colour": "purple", "weight": None}], spec)
    np.testing.assert_array_equal(vector, [[3.5, 0, 0, 0, np.float32(weight_fill)]])


def test_task_inference_and_regression(tmp_path):
    frame = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 7, "price": np.linspace(0.5, 99.3, 40)})
    frame.to_csv(tmp_path / "prices.csv", index=False)
    data = load_data(str(tmp_path / "prices.csv"), target="price")
    assert data.task == "regression" and data.classes == []
    assert data.y.dtype == np.float32


def test_npz_table_and_images(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "table.npz", x=rng.normal(size=(30, 5)), y=np.arange(30) % 3)
    table = load_data(str(tmp_path / "table.npz"))
    assert (table.kind, table.x.shape, table.classes) == ("tabular", (30, 5), ["0", "1", "2"])
    np.savez(tmp_path / "images.npz", x=rng.integers(0, 255, (30, 6, 6), dtype=np.uint8), y=np.arange(30) % 2)
    images = load_data(str(tmp_path / "images.npz"))
    assert (images.kind, images.x.shape, images.rescale) == ("image", (30, 6, 6, 1), 1 / 255)


def test_image_folder(image_folder):
    data = load_data(str(image_folder), image_size=16)
    assert data.classes == ["dark", "light"]
    assert data.x.shape == (24, 16, 16, 3)
    assert data.x[data.y == 0].mean() < 100 < data.x[data.y == 1].mean()


def test_builtin_datasets():
    digits = load_data(dataset="digits")
    assert digits.x.shape == (1797, 8, 8, 1) and digits.rescale == 1 / 16 and float(digits.x.max()) == 16.0
    wine = load_data(dataset="wine")
    assert (wine.x.shape, wine.num_classes) == ((178, 13), 3)
    assert load_data(dataset="diabetes").task == "regression"


@pytest.mark.parametrize("contents", ["", "a,b,label\n"])
def test_empty_tables_are_refused(tmp_path, contents):
    (tmp_path / "empty.csv").write_text(contents)
    with pytest.raises(DataError, match="empty|no data rows"):
        load_data(str(tmp_path / "empty.csv"), target="label")


def test_parquet_matches_csv(tmp_path, table_csv):
    pd.read_csv(table_csv).to_parquet(tmp_path / "table.parquet")
    from_parquet = load_data(str(tmp_path / "table.parquet"), target="label")
    from_csv = load_data(str(table_csv), target="label")
    np.testing.assert_array_equal(from_parquet.x, from_csv.x)
    np.testing.assert_array_equal(from_parquet.y, from_csv.y)


def test_trainer_and_device_share_one_encoder(table_csv):
    """The trainer encodes with the runtime's encoder (a device has only the runtime), and the spec as it
    travels in labels.json (a JSON round trip) rebuilds the training matrix exactly from raw rows."""
    import json

    from edgeml_runtime.metadata import encode_records as device_encode

    from edgeml.trainer import features

    assert features.encode_records is device_encode
    data = load_data(str(table_csv), target="label")
    spec_on_device = json.loads(json.dumps(data.features))
    rows = pd.read_csv(table_csv).drop_duplicates().drop(columns=["label"]).to_dict(orient="records")
    np.testing.assert_array_equal(device_encode(rows, spec_on_device), data.x)
