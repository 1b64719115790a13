"""`edgeml train` end to end: split, (search,) fit, evaluate, and write the model with its metadata."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from edgeml_runtime.progress import ProgressCallback, report

from edgeml import __version__
from edgeml.console import format_size
from edgeml.trainer import outputs, plots
from edgeml.trainer.dataset import CLASSIFICATION, Dataset
from edgeml.trainer.evaluation import evaluate
from edgeml.trainer.models import ModelConfig, build_model, parameter_count
from edgeml.trainer.search import run_search
from edgeml.trainer.training import FitConfig, Split, fit, seed_everything, split_data


@dataclass
class TrainResult:
    model: object
    data: Dataset
    split: Split
    model_config: ModelConfig
    history: dict
    metrics: dict
    labels: dict
    files: list[Path] = field(default_factory=list)
    trials: list[dict] = field(default_factory=list)

    @property
    def test_outputs(self) -> np.ndarray:
        return self.model.predict(self.split.x_test, verbose=0)


def train(
    data: Dataset,
    outdir,
    *,
    model_config: Optional[ModelConfig] = None,
    fit_config: Optional[FitConfig] = None,
    search_trials: int = 0,
    save_h5: bool = False,
    make_plots: bool = True,
    calibration_samples: int = 300,
    progress: ProgressCallback = None,
) -> TrainResult:
    """Train on `data` and write model.keras, labels.json, metrics.json, calibration.npz and plots.

    `progress` receives ProgressEvents: the model's size (a note), one counted event per epoch, the steps after.
    """
    model_config = (model_config or ModelConfig()).resolved(data.kind)
    fit_config = fit_config or FitConfig()
    split = split_data(data, fit_config)  # first: bad data fails before TensorFlow is even imported
    seed_everything(fit_config.seed)
    started = time.perf_counter()
    trials: list[dict] = []
    if search_trials > 1:
        model, history, model_config, trials = run_search(
            data, split, model_config, fit_config, search_trials, progress=progress
        )
    else:
        model = build_model(model_config, data, split.x_train, split.y_train)
        _announce(progress, model)
        history = fit(model, split, fit_config, progress=progress)
    seconds = time.perf_counter() - started
    report(progress, "evaluate", f"evaluating on the test split ({len(split.y_test)} examples)")
    test_metrics = evaluate(data.task, split.y_test, model.predict(split.x_test, verbose=0), data.classes)
    labels = outputs.labels_payload(data, model)
    metrics = {
        "schema": outputs.METRICS_SCHEMA,
        "edgeml": __version__,
        "source": data.source,
        "task": data.task,
        "test": test_metrics,
        "split": split.sizes(),
        "notes": data.notes,
        "model": {**model_config.to_dict(), "parameters": parameter_count(model),
                  "float32_bytes": 4 * parameter_count(model)},
        "training": {**fit_config.to_dict(), "epochs_run": history["epochs_run"],
                     "best_epoch": history["best_epoch"], "seconds": round(seconds, 2),
                     "history": {key: value for key, value in history.items() if isinstance(value, list)}},
        "search": trials,
    }
    report(progress, "save", f"writing the model and its metadata to {Path(outdir)}")
    staged = outputs.StagedOutput(Path(outdir))
    try:
        outputs.save_model(model, staged, save_h5=save_h5)
        outputs.write_json(staged.path("labels.json"), labels)
        outputs.write_json(staged.path("metrics.json"), metrics)
        calibration = outputs.calibration_arrays(
            data, split.x_train, split.y_train, calibration_samples, fit_config.seed
        )
        np.savez(staged.path("calibration.npz"), **calibration)
        np.savez(staged.path("test.npz"), **{data.input_name: split.x_test, "x": split.x_test, "y": split.y_test})
        if make_plots:
            report(progress, "plots", "drawing the plots")
            _plot(data, history, test_metrics, split, model, staged)
        files = staged.commit()
    except BaseException:
        staged.discard()
        raise
    return TrainResult(model, data, split, model_config, history, metrics, labels, files, trials)


def _announce(progress: ProgressCallback, model) -> None:
    count = parameter_count(model)
    report(progress, "model", f"model {model.name}: {count:,} parameters, {format_size(4 * count)} as float32",
           level="note")


def _plot(data, history, test_metrics, split, model, staged) -> None:
    plots.training_curves(history, staged.path("training_curves.png"))
    if data.task == CLASSIFICATION:
        plots.confusion_matrix(test_metrics["confusion_matrix"], data.classes, staged.path("confusion_matrix.png"))
    else:
        predicted = model.predict(split.x_test, verbose=0).reshape(-1)
        plots.predicted_vs_true(split.y_test, predicted, staged.path("predicted_vs_true.png"))
