"""One entry point for every data source: built-in datasets, tables, .npz arrays and image folders."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgeml.trainer.dataset import CLASSIFICATION, IMAGE, REGRESSION, TABULAR, Dataset
from edgeml.trainer.errors import DataError
from edgeml.trainer.features import ENCODING_SCHEMA
from edgeml.trainer.tabular import encode_target, infer_task, read_table, table_dataset

__all__ = ["BUILTIN_DATASETS", "CLASSIFICATION", "REGRESSION", "load_data"]

# Built-in datasets shipped with scikit-learn (no download). digits are 8x8 images valued 0..16.
BUILTIN_DATASETS = ("digits", "wine", "breast_cancer", "diabetes")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")


def load_data(
    path: Optional[str] = None,
    *,
    dataset: Optional[str] = None,
    target: Optional[str] = None,
    task: str = "auto",
    image_size: int = 32,
) -> Dataset:
    """Load a built-in dataset by name or a file/folder by path into model-ready arrays."""
    if (path is None) == (dataset is None):
        raise DataError("give either a data path or --dataset NAME (one of: " + ", ".join(BUILTIN_DATASETS) + ")")
    if dataset is not None:
        return builtin_dataset(dataset, task=task)
    source = Path(path)
    if not source.exists():
        raise DataError(f"{source} does not exist; give a CSV/Parquet file, an .npz file or an image folder")
    if source.is_dir():
        from edgeml.trainer.images import folder_dataset

        return folder_dataset(source, image_size=image_size)
    suffix = source.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return table_dataset(read_table(source), source=str(source), target=target, task=task)
    if suffix == ".npz":
        return npz_dataset(source, task=task)
    raise DataError(f"unsupported data file {source.name!r}; use .csv, .tsv, .parquet, .npz or an image folder")


def builtin_dataset(name: str, *, task: str = "auto") -> Dataset:
    from sklearn import datasets

    if name not in BUILTIN_DATASETS:
        raise DataError(f"unknown dataset {name!r}; built-in datasets are: {', '.join(BUILTIN_DATASETS)}")
    if name == "digits":
        bunch = datasets.load_digits()
        return Dataset(
            x=bunch.images[..., None].astype(np.float32), y=bunch.target.astype(np.int64),
            task=CLASSIFICATION, kind=IMAGE, source="sklearn:digits",
            classes=[str(name) for name in bunch.target_names],
            image={"height": 8, "width": 8, "channels": 1, "color_mode": "grayscale", "layout": "NHWC",
                   "value_range": [0, 16]},
            rescale=1.0 / 16.0,
        )
    loader = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer,
              "diabetes": datasets.load_diabetes}[name]
    frame = loader(as_frame=True).frame
    result = table_dataset(frame, source=f"sklearn:{name}", target="target", task=task)
    if result.task == CLASSIFICATION:  # class names instead of 0/1/2
        result.classes = [str(name) for name in loader().target_names]
    return result


def npz_dataset(path: Path, *, task: str = "auto") -> Dataset:
    """Arrays `x` (N, features) or (N, H, W[, C]) images, and labels or values `y`."""
    import pandas as pd
    from edgeml_runtime import InputError
    from edgeml_runtime.arrayfiles import read_array_file

    try:
        # headers checked before anything is allocated: numbers only, no bigger than the file, within a limit
        arrays = read_array_file(path)
    except InputError as error:
        raise DataError(f"cannot use {error}") from None
    if not isinstance(arrays, dict):
        raise DataError(f"{path} is not an .npz archive; save it with numpy.savez(path, x=inputs, y=labels)")
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise DataError(f"{path} lacks array {missing[0]!r} (has {', '.join(arrays) or 'none'}); "
                        "save it with numpy.savez(path, x=inputs, y=labels)")
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 0 or y.ndim == 0:
        raise DataError(f"{path}: 'x' and 'y' must have one row per example; got shapes {x.shape} and {y.shape}")
    if len(x) == 0:
        raise DataError(f"{path} is empty: 'x' has no rows")
    if len(x) != len(y):
        raise DataError(f"{path}: 'x' has {len(x)} rows but 'y' has {len(y)}; they must match")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: 'x' must be numeric, got dtype {x.dtype}")
    if y.ndim > 1 and y.shape[1:] != (1,):
        raise DataError(f"{path}: 'y' has shape {y.shape}; expected one label or value per row")
    _refuse_nonfinite(x, y, path)
    target = pd.Series(y.reshape(len(y)))
    task = infer_task(target, task, "y")
    labels, classes = encode_target(target, task, "y")
    if x.ndim == 2:
        return _npz_table(x, labels, classes, task, str(path))
    if x.ndim in (3, 4):
        return _npz_images(x, labels, classes, task, str(path))
    raise DataError(f"{path}: 'x' has shape {x.shape}; expected (N, features) or (N, H, W[, C]) images")


def _refuse_nonfinite(x: np.ndarray, y: np.ndarray, path: Path) -> None:
    """Infinities are refused everywhere (no fill means anything for them); NaN is a gap in a table's 'x'
    (filled with the column's median, as for CSV files) and refused in images and in 'y'."""
    checks = [("x", x, x.ndim != 2), ("y", y, True)]
    for name, array, nan_refused in checks:
        if array.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(array) if nan_refused else np.isinf(array)
        if bad.any():
            row = int(np.argmax(bad.reshape(len(array), -1).any(axis=1)))
            kind, fix = ("NaN or infinite", "") if nan_refused else ("infinite", ", or NaN to have them filled")
            raise DataError(f"{path}: '{name}' has {int(bad.sum())} {kind} value(s) (first in row {row}); replace "
                            f"them with real numbers{fix}")


def _npz_table(x, y, classes, task, source) -> Dataset:
    x = x.astype(np.float32)
    fills = np.nanmedian(x, axis=0)
    if np.isnan(fills).any():
        raise DataError(f"{source}: a feature column of 'x' has no values at all")
    x = np.where(np.isnan(x), fills, x)
    columns = [{"name": f"x{index}", "kind": "numeric", "fill": float(fill)} for index, fill in enumerate(fills)]
    spec = {"encoding": ENCODING_SCHEMA, "columns": columns, "vector": [c["name"] for c in columns],
            "missing": "a missing value (None or NaN) is replaced by the column's 'fill'",
            "unknown_category": "not applicable"}
    return Dataset(x=x, y=y, task=task, kind=TABULAR, source=source, classes=classes, features=spec)


def _npz_images(x, y, classes, task, source) -> Dataset:
    images = x[..., None] if x.ndim == 3 else x
    # 8-bit pixels get the usual fixed 1/255; other value ranges get a Normalization adapted on training.
    rescale = 1.0 / 255.0 if x.dtype == np.uint8 else None
    height, width, channels = images.shape[1:]
    return Dataset(
        x=images.astype(np.float32), y=y, task=task, kind=IMAGE, source=source, classes=classes,
        image={"height": int(height), "width": int(width), "channels": int(channels), "layout": "NHWC",
               "value_range": [float(images.min()), float(images.max())]},
        rescale=rescale,
    )

