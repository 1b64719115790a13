"""Turning table rows into the model's feature vector.

`fit_table` (pandas, at training time) decides how each column is encoded and records it as a plain
dict that goes into labels.json. `encode_records` rebuilds the same vector from raw values with numpy
only, which is what a device does before calling the model. Scaling is not done here: the model's
Normalization layer does it, so the device never needs the training statistics.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from edgeml.trainer.errors import DataError

ENCODING_SCHEMA = "edgeml.features/1"
# A text column with more distinct values than this looks like an identifier or free text.
MAX_CATEGORIES = 50


def fit_table(frame) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    """Encode a feature table: numeric columns as they are, text columns one-hot, gaps filled.

    Returns the float32 matrix, the encoding spec (JSON-ready) and notes about dropped columns.
    """
    import pandas as pd

    columns: list[dict[str, Any]] = []
    notes: list[str] = []
    for name in frame.columns:
        series = frame[name]
        if series.isna().all():
            notes.append(f"dropped column {name!r}: every value is missing")
            continue
        if pd.api.types.is_bool_dtype(series):
            series = series.astype("float64")
        if pd.api.types.is_numeric_dtype(series):
            columns.append({"name": str(name), "kind": "numeric", "fill": float(series.median())})
            continue
        text = series.dropna().astype(str)
        categories = sorted(text.unique().tolist())
        if len(categories) > MAX_CATEGORIES:
            notes.append(
                f"dropped column {name!r}: {len(categories)} distinct text values "
                "(looks like an identifier or free text)"
            )
            continue
        columns.append(
            {
                "name": str(name),
                "kind": "categorical",
                "encoding": "one_hot",
                "categories": categories,
                "fill": str(text.mode().iloc[0]),
            }
        )
    if not columns:
        raise DataError("no usable feature columns: every column is empty or free text")
    spec = {
        "encoding": ENCODING_SCHEMA,
        "columns": columns,
        "vector": vector_names(columns),
        "missing": "a missing value (None, NaN or empty text) is replaced by the column's 'fill'",
        "unknown_category": "a category not seen in training encodes as all zeros",
    }
    records = {column["name"]: frame[column["name"]].tolist() for column in columns}
    return encode_records(records, spec), spec, notes


def vector_names(columns: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the feature vector's entries, in order: `col` or `col=category`."""
    names: list[str] = []
    for column in columns:
        if column["kind"] == "numeric":
            names.append(column["name"])
        else:
            names.extend(f"{column['name']}={category}" for category in column["categories"])
    return names


def encode_records(records, spec: Mapping[str, Any]) -> np.ndarray:
    """Raw values -> float32 feature matrix, using only numpy and the spec from labels.json.

    `records` is either a mapping column -> sequence of raw values, or a sequence of row mappings.
    """
    if not isinstance(records, Mapping):
        rows = list(records)
        records = {column["name"]: [row.get(column["name"]) for row in rows] for column in spec["columns"]}
    parts = []
    for column in spec["columns"]:
        if column["name"] not in records:
            raise DataError(f"missing column {column['name']!r}; the model needs {_names(spec)}")
        values = [column["fill"] if _is_missing(value) else value for value in records[column["name"]]]
        if column["kind"] == "numeric":
            parts.append(np.asarray(values, dtype=np.float32).reshape(-1, 1))
        else:
            text = np.asarray([str(value) for value in values])
            categories = np.asarray(column["categories"])
            parts.append((text[:, None] == categories[None, :]).astype(np.float32))
    return np.concatenate(parts, axis=1)


def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _names(spec) -> str:
    return ", ".join(column["name"] for column in spec["columns"])
