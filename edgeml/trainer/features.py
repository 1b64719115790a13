"""Turning table rows into the model's feature vector.

`fit_table` (pandas, at training time) decides how each column is encoded and records it as a plain
dict that goes into labels.json. The vector itself is built by the runtime's `encode_records` (numpy
only), both here at training time and on the device, so the two cannot drift apart. Scaling is not done
here: the model's Normalization layer does it, so the device never needs the training statistics.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from edgeml_runtime.metadata import encode_records

from edgeml.trainer.errors import DataError

__all__ = ["ENCODING_SCHEMA", "MAX_CATEGORIES", "encode_records", "fit_table", "vector_names"]

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
