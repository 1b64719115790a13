"""Tables (CSV, Parquet, scikit-learn frames) -> Dataset: target chosen, rows cleaned, columns encoded."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgeml.trainer.dataset import CLASSIFICATION, REGRESSION, TABULAR, Dataset
from edgeml.trainer.errors import DataError
from edgeml.trainer.features import fit_table

# Column names taken as the target when --target is not given.
DEFAULT_TARGETS = ("target", "label", "class", "y")
# An integer target with at most this many distinct values is treated as class labels.
MAX_INFERRED_CLASSES = 20


def read_table(path: Path):
    """Read a CSV/TSV/Parquet file into a DataFrame, turning reader failures into DataError."""
    import pandas as pd

    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; give a file with a header row and data rows")
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except pd.errors.EmptyDataError as error:
        raise DataError(f"{path} is empty; give a file with a header row and data rows") from error
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as error:
        raise DataError(f"cannot read {path}: {str(error).splitlines()[0]}") from error
    if frame.empty:
        raise DataError(f"{path} has a header but no data rows")
    return frame


def table_dataset(frame, *, source: str, target: Optional[str], task: str) -> Dataset:
    """Pick the target, drop duplicates and unlabelled rows, infer the task, encode the features."""
    target = _choose_target(frame, target, source)
    notes = []
    duplicates = int(frame.duplicated().sum())
    if duplicates:
        frame = frame.drop_duplicates()
        notes.append(f"removed {duplicates} exact duplicate rows")
    unlabelled = int(frame[target].isna().sum())
    if unlabelled:
        frame = frame[frame[target].notna()]
        notes.append(f"dropped {unlabelled} rows with no value in target column {target!r}")
    if frame.empty:
        raise DataError(f"no rows left with a value in target column {target!r}")
    refuse_infinite(frame, source)
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"{source} has only the target column {target!r}; it needs feature columns too")
    task = infer_task(frame[target], task, target)
    y, classes = encode_target(frame[target], task, target)
    x, spec, column_notes = fit_table(features)
    return Dataset(
        x=x, y=y, task=task, kind=TABULAR, source=source, classes=classes, target=target,
        features=spec, notes=notes + column_notes,
    )


def refuse_infinite(frame, source: str) -> None:
    """Infinite numbers are refused, not trained on: a gap (empty cell, NaN) is filled with the column's
    median, but an infinity has no meaningful fill and would poison the scaling (mean Infinity) and the
    model. DataError names the column, how many and the first row."""
    import pandas as pd

    for name in frame.columns:
        series = frame[name]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        infinite = np.isinf(series.to_numpy(dtype=np.float64, na_value=np.nan))
        if infinite.any():
            first = frame.index[int(np.argmax(infinite))]
            raise DataError(
                f"{source}: column {str(name)!r} has {int(infinite.sum())} infinite value(s) (first in data row "
                f"{first}); replace them with real numbers, or empty the cells to have them filled like gaps"
            )


def infer_task(series, task: str, target: str) -> str:
    """'auto' -> classification for text or few integer values, regression for other numbers."""
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if task == REGRESSION and not numeric:
        example = series.iloc[0]
        raise DataError(
            f"target column {target!r} is not numeric (e.g. {example!r}); regression needs numbers, "
            "use --task classification"
        )
    if task != "auto":
        return task
    if not numeric:
        return CLASSIFICATION
    values = series.to_numpy(dtype=np.float64)
    integral = np.all(np.equal(np.mod(values, 1), 0))
    if integral and series.nunique() <= MAX_INFERRED_CLASSES:
        return CLASSIFICATION
    return REGRESSION


def encode_target(series, task: str, target: str) -> tuple[np.ndarray, list[str]]:
    """Class labels -> indices into the sorted class names; regression targets -> float32."""
    import pandas as pd

    if task == REGRESSION:
        return series.to_numpy(dtype=np.float32), []
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        unique = sorted(series.unique().tolist())
        names = [_number_name(value) for value in unique]
        index = {value: position for position, value in enumerate(unique)}
        y = np.asarray([index[value] for value in series.tolist()], dtype=np.int64)
    else:
        text = series.astype(str)
        names = sorted(text.unique().tolist())
        index = {name: position for position, name in enumerate(names)}
        y = np.asarray([index[name] for name in text.tolist()], dtype=np.int64)
    if len(names) < 2:
        raise DataError(
            f"target column {target!r} has a single class ({names[0]!r}); classification needs at least two"
        )
    return y, names


def _choose_target(frame, target: Optional[str], source: str) -> str:
    columns = [str(column) for column in frame.columns]
    if target is None:
        for candidate in DEFAULT_TARGETS:
            if candidate in columns:
                return candidate
        raise DataError(f"pass --target COLUMN for {source} (columns: {', '.join(columns)})")
    if target not in columns:
        raise DataError(f"unknown target column {target!r} in {source}; columns are: {', '.join(columns)}")
    return target


def _number_name(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
