"""Honest test-set metrics with scikit-learn: per class and macro for classification, MAE/RMSE/R² else."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeml.trainer.dataset import CLASSIFICATION


def evaluate(task: str, y_true: np.ndarray, outputs: np.ndarray, classes: Sequence[str] = ()) -> dict:
    """Metrics from the model's raw outputs (class probabilities or predicted values)."""
    if task == CLASSIFICATION:
        return classification_metrics(y_true, np.argmax(outputs, axis=-1), classes)
    return regression_metrics(y_true, np.asarray(outputs).reshape(-1))


def classification_metrics(y_true, y_pred, classes: Sequence[str]) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    macro = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    return {
        "task": CLASSIFICATION,
        "samples": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision_macro": float(macro[0]),
        "recall_macro": float(macro[1]),
        "f1_macro": float(macro[2]),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def regression_metrics(y_true, y_pred) -> dict:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "task": "regression",
        "samples": int(len(y_true)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "r2": float(r2_score(y_true, y_pred)),
    }


def headline(metrics: dict) -> tuple[str, float]:
    """The one number to show first: accuracy, or R² for regression."""
    if metrics["task"] == CLASSIFICATION:
        return "accuracy", metrics["accuracy"]
    return "r2", metrics["r2"]
