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

__all__ = ["ARRAYS", "CLASSIFICATION", "LABELS_SCHEMA", "REGRESSION", "TASKS", "ModelMetadata", "encode_records",
           "guess_task", "read_labels"]

CLASSIFICATION = "classification"
REGRESSION = "regression"
ARRAYS = "arrays"  # not class scores, not one value (autoencoders, multi-output models): outputs by name
TASKS = (CLASSIFICATION, REGRESSION, ARRAYS)
LABELS_TASKS = (CLASSIFICATION, REGRESSION)  # what labels.json may say
# Output names that say "class probabilities" (Keras' Softmax layer, "probabilities", "probs"...)
SCORE_NAMES = ("softmax", "prob")
# How far from 1 a row of probabilities may sum (float rounding; an int8 output is a few quanta off).
SUM_TOLERANCE = 0.02


@dataclass(frozen=True)
class ModelMetadata:
    """The facts a predictor needs. `source` is the labels.json path, or None; `basis` says where the task
    came from: 'labels.json', 'given' (the caller's task=/classes=/output=) or the guess's reason."""

    task: str
    classes: List[str] = field(default_factory=list)
    output_name: Optional[str] = None
    features: Optional[dict] = None
    image: Optional[dict] = None
    source: Optional[Path] = None
    basis: str = "labels.json"

    @property
    def column_names(self) -> List[str]:
        return [column["name"] for column in (self.features or {}).get("columns", [])]

    @property
    def named_classes(self) -> bool:
        """False when the class names are only indices ('0', '1', ...) made up without labels.json."""
        return self.classes != [str(index) for index in range(len(self.classes))]

    def to_dict(self) -> dict:
        """JSON-ready facts (/health): class names only when they are names, never hundreds of indices."""
        return {
            "task": self.task,
            "task_basis": self.basis,
            "classes": list(self.classes) if self.named_classes else None,
            "class_count": len(self.classes) if self.task == CLASSIFICATION else None,
            "output": self.output_name,
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
    if task not in LABELS_TASKS:
        raise ModelLoadError(f"{path}: task {task!r} must be one of {', '.join(LABELS_TASKS)}")
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


def guess_task(outputs: Sequence[Any], probe: Optional[Mapping[str, np.ndarray]] = None) -> ModelMetadata:
    """Without labels.json: the task the model's outputs (TensorSpecs) suggest.

    Class scores only when they look like scores: one output of shape (batch, N>1) that is named like
    probabilities (softmax, prob...) or whose rows in `probe` (the model's outputs on one sample) are
    non-negative and sum to 1. One output of shape (batch, 1): a value (regression). Anything else (an
    autoencoder's reconstruction, logits, several outputs): the outputs as arrays, by name."""
    if len(outputs) != 1:
        return ModelMetadata(task=ARRAYS, basis=f"guessed: {len(outputs)} outputs, returned by name")
    spec = outputs[0]
    shape = tuple(spec.shape or ())
    width = shape[-1] if shape else None
    if len(shape) == 2 and width == 1:
        return ModelMetadata(task=REGRESSION, output_name=spec.name, basis="guessed: one value per sample")
    if len(shape) == 2 and width is not None and width > 1:
        classes = [str(index) for index in range(width)]
        if any(word in spec.name.lower() for word in SCORE_NAMES):
            return ModelMetadata(task=CLASSIFICATION, classes=classes, output_name=spec.name,
                                 basis=f"guessed: output '{spec.name}' is named like class probabilities")
        if probe is not None and spec.name in probe and looks_like_probabilities(probe[spec.name]):
            return ModelMetadata(task=CLASSIFICATION, classes=classes, output_name=spec.name,
                                 basis="guessed: rows are non-negative and sum to 1 (class probabilities)")
    return ModelMetadata(task=ARRAYS, output_name=spec.name,
                         basis="guessed: the output does not look like class probabilities")


def looks_like_probabilities(rows: np.ndarray) -> bool:
    """Rows (batch, N) that are non-negative and sum to 1 within SUM_TOLERANCE."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] < 2 or not np.all(np.isfinite(rows)):
        return False
    return bool(np.all(rows >= -1e-6) and np.all(np.abs(rows.sum(axis=1) - 1.0) <= SUM_TOLERANCE))


def metadata_for_task(task: str, output_shape: Sequence[Optional[int]], classes: Optional[List[str]], *,
                      output_name: Optional[str] = None, basis: str = "given") -> ModelMetadata:
    """Metadata the caller states (from_model(..., task=, classes=), `serve --task`) instead of a labels.json."""
    if task not in TASKS:
        raise InputError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if task != CLASSIFICATION:
        return ModelMetadata(task=task, output_name=output_name, basis=basis)
    width = output_shape[-1] if output_shape else None
    if classes is None:
        if width is None:
            raise InputError("the model's output width is dynamic: pass classes=[...]")
        classes = [str(index) for index in range(width)]
    return ModelMetadata(task=CLASSIFICATION, classes=[str(name) for name in classes], output_name=output_name,
                         basis=basis)
