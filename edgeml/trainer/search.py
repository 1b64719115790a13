"""A small random hyper-parameter search over width, depth and learning rate, scored on validation."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

import numpy as np
from edgeml_runtime.progress import ProgressCallback

from edgeml.trainer.dataset import CLASSIFICATION, Dataset
from edgeml.trainer.models import ModelConfig, build_model, parameter_count
from edgeml.trainer.training import FitConfig, Split, fit, seed_everything

WIDTHS = (0.5, 1.0, 2.0)
DEPTHS = (1, 2, 3)
LEARNING_RATES = (3e-4, 1e-3, 3e-3)


def candidates(base: ModelConfig, trials: int, seed: int) -> list[ModelConfig]:
    """The user's configuration first (so the search never does worse), then random distinct others."""
    grid = [replace(base, width=w, depth=d, learning_rate=lr)
            for w, d, lr in itertools.product(WIDTHS, DEPTHS, LEARNING_RATES)]
    others = [config for config in grid if config != base]
    order = np.random.default_rng(seed).permutation(len(others))
    return [base] + [others[index] for index in order[: max(0, trials - 1)]]


def run_search(data: Dataset, split: Split, base: ModelConfig, fit_config: FitConfig, trials: int, *,
               progress: ProgressCallback = None):
    """Train each candidate on the training split; keep the best on validation. Returns model, history, rows."""
    rows, best = [], None
    for number, config in enumerate(candidates(base, trials, fit_config.seed), start=1):
        seed_everything(fit_config.seed)
        model = build_model(config, data, split.x_train, split.y_train)
        started = time.perf_counter()
        label = f"trial {number}/{trials} (width {config.width:g}, depth {config.depth}, lr {config.learning_rate:g})"
        history = fit(model, split, fit_config, progress=progress, label=label)
        val_loss, val_score = _validation_scores(model, data, split)
        row = {"trial": number, "width": config.width, "depth": config.depth,
               "learning_rate": config.learning_rate, "parameters": parameter_count(model),
               "epochs": history["epochs_run"], "val_loss": val_loss, "val_score": val_score,
               "seconds": round(time.perf_counter() - started, 2)}
        rows.append(row)
        if best is None or _better(row, best[0]):
            best = (row, model, history, config)
    best_row, model, history, config = best
    best_row["best"] = True
    return model, history, config, rows


def _validation_scores(model, data: Dataset, split: Split) -> tuple[float, float]:
    loss, score = model.evaluate(split.x_val, split.y_val, verbose=0)[:2]
    # Higher is better for the score: accuracy, or minus MAE for regression.
    return float(loss), float(score if data.task == CLASSIFICATION else -score)


def _better(row: dict, best: dict) -> bool:
    return (row["val_score"], -row["val_loss"]) > (best["val_score"], -best["val_loss"])
