"""PNG plots with matplotlib's headless Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history: dict, path: Path) -> Path:
    """Loss (and accuracy or MAE) per epoch for the training and validation splits."""
    plt = _pyplot()
    second = "accuracy" if "accuracy" in history else "mae"
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, metric in zip(axes, ("loss", second)):
        axis.plot(history[metric], label="train")
        axis.plot(history[f"val_{metric}"], label="validation")
        axis.axvline(history["best_epoch"] - 1, color="grey", linestyle=":", label="best epoch")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    figure.tight_layout()
    return _save(figure, path)


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path) -> Path:
    plt = _pyplot()
    matrix = np.asarray(matrix)
    size = max(4.0, 0.5 * len(classes) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    axis.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(column, row, str(count), ha="center", va="center",
                  color="white" if count > threshold else "black", fontsize=8)
    axis.set_title("confusion matrix (test split)")
    figure.tight_layout()
    return _save(figure, path)


def predicted_vs_true(y_true, y_pred, path: Path) -> Path:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.scatter(y_true, y_pred, s=8, alpha=0.6)
    low, high = float(np.min(y_true)), float(np.max(y_true))
    axis.plot([low, high], [low, high], color="grey", linestyle=":")
    axis.set_xlabel("true")
    axis.set_ylabel("predicted")
    axis.set_title("test split")
    figure.tight_layout()
    return _save(figure, path)


def histograms(frame, path: Path, *, max_columns: int = 24) -> Path:
    plt = _pyplot()
    columns = list(frame.columns)[:max_columns]
    per_row = min(4, len(columns))
    rows = -(-len(columns) // per_row)
    figure, axes = plt.subplots(rows, per_row, figsize=(3 * per_row, 2.4 * rows), squeeze=False)
    for axis, column in zip(axes.flat, columns):
        axis.hist(frame[column].dropna(), bins=20)
        axis.set_title(str(column), fontsize=9)
    for axis in list(axes.flat)[len(columns):]:
        axis.axis("off")
    figure.tight_layout()
    return _save(figure, path)


def correlation_heatmap(correlation, path: Path) -> Path:
    plt = _pyplot()
    size = max(4.0, 0.35 * len(correlation.columns) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(correlation.to_numpy(), cmap="coolwarm", vmin=-1, vmax=1)
    names = [str(name) for name in correlation.columns]
    axis.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    axis.set_yticks(range(len(names)), names, fontsize=7)
    figure.colorbar(image, ax=axis)
    axis.set_title("correlation (numeric columns)")
    figure.tight_layout()
    return _save(figure, path)


def class_balance(counts: dict, path: Path) -> Path:
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(max(4.0, 0.4 * len(counts) + 2), 3.5))
    axis.bar([str(name) for name in counts], list(counts.values()))
    axis.set_ylabel("examples")
    axis.set_title("class balance")
    axis.tick_params(axis="x", rotation=45)
    figure.tight_layout()
    return _save(figure, path)


def _save(figure, path: Path) -> Path:
    plt = _pyplot()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
