"""The data-exploration step: per-column statistics, missing values, class balance and PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgeml.trainer import plots
from edgeml.trainer.data import BUILTIN_DATASETS, TABLE_SUFFIXES
from edgeml.trainer.errors import DataError
from edgeml.trainer.outputs import StagedOutput, write_json
from edgeml.trainer.tabular import DEFAULT_TARGETS, infer_task, read_table

SUMMARY_SCHEMA = "edgeml.explore/1"


def explore(path: Optional[str] = None, *, dataset: Optional[str] = None, target: Optional[str] = None,
            outdir="explore-output", make_plots: bool = True) -> dict:
    """Summarise a table, .npz file, image folder or built-in dataset; write summary.json and plots."""
    frame, source = _as_frame(path, dataset)
    staged = StagedOutput(Path(outdir))
    try:
        if frame is None:
            summary = _image_folder_summary(Path(path), staged if make_plots else None)
        else:
            summary = _table_summary(frame, target, staged if make_plots else None)
        summary = {"schema": SUMMARY_SCHEMA, "source": source, **summary}
        write_json(staged.path("summary.json"), summary)
        summary["files"] = [str(file) for file in staged.commit()]
    except BaseException:
        staged.discard()
        raise
    return summary


def _as_frame(path, dataset):
    """A DataFrame for tables, .npz and built-in data; None for an image folder."""
    import pandas as pd

    if (path is None) == (dataset is None):
        raise DataError("give either a data path or --dataset NAME (one of: " + ", ".join(BUILTIN_DATASETS) + ")")
    if dataset is not None:
        from sklearn import datasets

        if dataset not in BUILTIN_DATASETS:
            raise DataError(f"unknown dataset {dataset!r}; built-in datasets are: {', '.join(BUILTIN_DATASETS)}")
        return getattr(datasets, f"load_{dataset}")(as_frame=True).frame, f"sklearn:{dataset}"
    source = Path(path)
    if not source.exists():
        raise DataError(f"{source} does not exist; give a CSV/Parquet file, an .npz file or an image folder")
    if source.is_dir():
        return None, str(source)
    if source.suffix.lower() in TABLE_SUFFIXES:
        return read_table(source), str(source)
    if source.suffix.lower() == ".npz":
        from edgeml_runtime import InputError
        from edgeml_runtime.arrayfiles import read_array_file

        try:
            arrays = read_array_file(source)  # headers checked before anything is allocated
        except InputError as error:
            raise DataError(f"cannot use {error}") from None
        if not isinstance(arrays, dict) or "x" not in arrays or arrays["x"].ndim == 0:
            has = ", ".join(arrays) if isinstance(arrays, dict) else "one unnamed array"
            raise DataError(f"{source} lacks array 'x' with one row per example (has {has})")
        x = arrays["x"].reshape(len(arrays["x"]), -1)
        frame = pd.DataFrame(x, columns=[f"x{index}" for index in range(x.shape[1])])
        if "y" in arrays:
            frame["y"] = arrays["y"]
        return frame, str(source)
    raise DataError(f"unsupported data file {source.name!r}; use .csv, .tsv, .parquet, .npz or an image folder")


def _table_summary(frame, target: Optional[str], staged: Optional[StagedOutput]) -> dict:
    if target is not None and target not in frame.columns:
        raise DataError(f"unknown target column {target!r}; columns are: {', '.join(map(str, frame.columns))}")
    if target is None:
        target = next((name for name in DEFAULT_TARGETS if name in frame.columns), None)
    columns = {str(name): _column_summary(frame[name]) for name in frame.columns}
    summary = {
        "rows": int(len(frame)),
        "columns": columns,
        "duplicate_rows": int(frame.duplicated().sum()),
        "missing_values": int(frame.isna().sum().sum()),
        "target": target,
    }
    balance = None
    if target is not None and infer_task(frame[target].dropna(), "auto", target) == "classification":
        balance = {str(key): int(count) for key, count in frame[target].value_counts().sort_index().items()}
        summary["class_balance"] = balance
        summary["majority_share"] = round(max(balance.values()) / sum(balance.values()), 4)
    elif target is None:
        summary["notes"] = [f"class balance skipped: no --target given and no column named "
                            f"{'/'.join(DEFAULT_TARGETS)}; pass --target COLUMN to see it"]
    else:
        summary["notes"] = [f"class balance skipped: target {target!r} looks numeric (regression)"]
    if staged is not None:
        numeric = frame.select_dtypes(include="number")
        if not numeric.empty:
            plots.histograms(numeric, staged.path("histograms.png"))
        if numeric.shape[1] >= 2:
            correlation = numeric.loc[:, numeric.nunique() > 1].corr()
            plots.correlation_heatmap(correlation, staged.path("correlation.png"))
        if balance:
            plots.class_balance(balance, staged.path("class_balance.png"))
    return summary


def _column_summary(series) -> dict:
    import pandas as pd

    result = {"dtype": str(series.dtype), "missing": int(series.isna().sum()), "unique": int(series.nunique())}
    values = series.dropna()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and len(values):
        result.update({"mean": float(values.mean()), "std": float(values.std()) if len(values) > 1 else 0.0,
                       "min": float(values.min()), "median": float(values.median()), "max": float(values.max())})
    elif len(values):
        top = values.astype(str).value_counts()
        result.update({"top": str(top.index[0]), "top_count": int(top.iloc[0])})
    return result


def _image_folder_summary(root: Path, staged: Optional[StagedOutput]) -> dict:
    from PIL import Image, UnidentifiedImageError

    from edgeml.trainer.images import _class_files

    balance, sizes, modes, unreadable = {}, [], {}, []
    for name, paths in _class_files(root).items():
        balance[name] = len(paths)
        for path in paths:
            try:
                with Image.open(path) as image:
                    sizes.append(image.size)
                    modes[image.mode] = modes.get(image.mode, 0) + 1
            except (UnidentifiedImageError, OSError):
                unreadable.append(str(path))
    widths, heights = (np.asarray(values) for values in zip(*sizes)) if sizes else (np.zeros(1), np.zeros(1))
    if staged is not None:
        plots.class_balance(balance, staged.path("class_balance.png"))
    return {
        "images": sum(balance.values()),
        "class_balance": balance,
        "majority_share": round(max(balance.values()) / sum(balance.values()), 4),
        "width": {"min": int(widths.min()), "median": float(np.median(widths)), "max": int(widths.max())},
        "height": {"min": int(heights.min()), "median": float(np.median(heights)), "max": int(heights.max())},
        "modes": modes,
        "unreadable": unreadable,
    }
