"""What the trainer recorded about a model (`labels.json`, schema edgeml.labels/1), read with numpy only.

The trainer writes labels.json next to the Keras model and the converter copies it next to its
artifacts (`"metadata": {"labels": "labels.json"}` in manifest.json). It says whether the model
classifies or regresses, the class names in output order, and how a raw sample becomes the model
input: table rows through the `features` spec (numeric columns as they are, categories one-hot, gaps
filled), images as NHWC pixels. Scaling happens inside the model, so nothing here needs statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np

from edgeml_runtime.documents import read_json_object
from edgeml_runtime.errors import InputError, ModelLoadError
from edgeml_runtime.formats import LABELS_SCHEMA

__all__ = ["CLASSIFICATION", "LABELS_SCHEMA", "REGRESSION", "ModelMetadata", "encode_records", "read_labels"]

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)


@dataclass(frozen=True)
class ModelMetadata:
    """The facts a predictor needs. `source` is the labels.json path, or None when guessed."""

    task: str
    classes: List[str] = field(default_factory=list)
    output_name: Optional[str] = None
    features: Optional[dict] = None
    image: Optional[dict] = None
    source: Optional[Path] = None

    @property
    def column_names(self) -> List[str]:
        return [column["name"] for column in (self.features or {}).get("columns", [])]

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "classes": list(self.classes),
            "labels_file": str(self.source) if self.source else None,
            "feature_columns": self.column_names or None,
            "image": self.image,
        }


def read_labels(path: Path) -> ModelMetadata:
    """Parse labels.json; a damaged or foreign file is a ModelLoadError naming the file and the fix."""
    path = Path(path)
    payload = read_json_object(path, "labels file")
    if payload.get("schema") != LABELS_SCHEMA:
        schema = payload.get("schema")
        raise ModelLoadError(f"{path}: schema {schema!r} is not {LABELS_SCHEMA}; pass the labels.json "
                             "written by edgeml train")
    task = payload.get("task")
    if task not in TASKS:
        raise ModelLoadError(f"{path}: task {task!r} must be one of {', '.join(TASKS)}")
    classes = [str(name) for name in payload.get("classes") or []]
    if task == CLASSIFICATION and not classes:
        raise ModelLoadError(f"{path}: a classification model needs its 'classes'; re-run edgeml train")
    outputs = payload.get("outputs") or [{}]
    return ModelMetadata(
        task=task,
        classes=classes,
        output_name=outputs[0].get("name"),
        features=payload.get("features"),
        image=payload.get("image"),
        source=path,
    )


def encode_records(records: Any, spec: Mapping[str, Any]) -> np.ndarray:
    """Raw table values -> float32 feature matrix, exactly as `edgeml train` encoded its training data.

    `records` is one row mapping, a sequence of row mappings, or a mapping column -> sequence of values.
    """
    if isinstance(records, Mapping) and not _is_column_mapping(records):
        records = [records]
    names = [column["name"] for column in spec["columns"]]
    if not isinstance(records, Mapping):
        rows = list(records)
        for row in rows:  # an absent key is more likely a bug than a gap: gaps are sent as null
            _check_columns(row, names)
        records = {name: [row[name] for row in rows] for name in names}
    parts = []  # other columns (ids, timestamps) are ignored, as in training; a misspelt one is "missing"
    for column in spec["columns"]:
        _check_columns(records, names)
        values = [column["fill"] if _is_missing(value) else value for value in records[column["name"]]]
        if column["kind"] == "numeric":
            parts.append(_numeric(values, column["name"]).reshape(-1, 1))
        else:
            text = np.asarray([str(value) for value in values])
            categories = np.asarray(column["categories"])
            parts.append((text[:, None] == categories[None, :]).astype(np.float32))
    return np.concatenate(parts, axis=1)


def _check_columns(record: Mapping, names: List[str]) -> None:
    missing = [name for name in names if name not in record]
    if missing:
        raise InputError(f"missing column(s) {missing}; the model needs {names} (send null for an unknown value)")


def _is_column_mapping(records: Mapping) -> bool:
    return bool(records) and all(isinstance(value, (list, tuple, np.ndarray)) for value in records.values())


def _numeric(values: Sequence[Any], name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f"column {name!r} is numeric, got {values!r}") from None


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def guessed_metadata(output_shape: Sequence[Optional[int]]) -> ModelMetadata:
    """Without labels.json: several outputs per sample read as class scores named '0', '1', ..."""
    width = output_shape[-1] if output_shape else None
    if width is not None and width > 1 and len(output_shape) == 2:
        return ModelMetadata(task=CLASSIFICATION, classes=[str(index) for index in range(width)])
    return ModelMetadata(task=REGRESSION)


def metadata_for_task(task: str, output_shape: Sequence[Optional[int]], classes: Optional[List[str]]) -> ModelMetadata:
    """Metadata the caller states (from_model(..., task=, classes=)) instead of a labels.json."""
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if task == REGRESSION:
        return ModelMetadata(task=REGRESSION)
    width = output_shape[-1] if output_shape else None
    if classes is None:
        if width is None:
            raise InputError("the model's output width is dynamic: pass classes=[...]")
        classes = [str(index) for index in range(width)]
    return ModelMetadata(task=CLASSIFICATION, classes=[str(name) for name in classes])

