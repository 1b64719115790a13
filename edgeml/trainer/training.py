"""Splitting, seeding and fitting, reporting one progress event per epoch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from edgeml_runtime.progress import ProgressCallback, report

from edgeml.trainer.dataset import CLASSIFICATION, Dataset
from edgeml.trainer.errors import DataError


@dataclass
class FitConfig:
    epochs: int = 60
    batch_size: int = 32
    patience: int = 8  # epochs without a better validation loss before stopping
    seed: int = 0
    test_size: float = 0.2
    validation_size: float = 0.15  # of the whole dataset

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


def seed_everything(seed: int) -> None:
    """Same seed, same metrics: seed Python, numpy and TensorFlow and ask TF for deterministic ops."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def split_data(data: Dataset, config: FitConfig) -> Split:
    """Train / validation / test, stratified by class for classification."""
    from sklearn.model_selection import train_test_split

    classification = data.task == CLASSIFICATION
    if classification:
        counts = np.bincount(data.y, minlength=data.num_classes)
        if counts.min() < 3:
            rare = data.classes[int(np.argmin(counts))]
            raise DataError(
                f"class {rare!r} has only {int(counts.min())} example(s); each class needs at least 3 "
                "(train, validation, test): add examples or remove the class"
            )
    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            data.x, data.y, test_size=config.test_size, random_state=config.seed,
            stratify=data.y if classification else None,
        )
        validation = config.validation_size / (1.0 - config.test_size)
        x_train, x_val, y_train, y_val = train_test_split(
            x_rest, y_rest, test_size=validation, random_state=config.seed,
            stratify=y_rest if classification else None,
        )
    except ValueError as error:
        raise DataError(f"cannot split {len(data.y)} examples into train/validation/test: {error}") from error
    return Split(x_train, y_train, x_val, y_val, x_test, y_test)


def fit(model, split: Split, config: FitConfig, *, progress: ProgressCallback = None, label: str = "training"):
    """Fit with early stopping on validation loss, keeping the best weights. Returns the history dict.

    `progress` gets a counted event per epoch (stage "train") and a note with the outcome at the end.
    """
    import keras

    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    callbacks = [stop]
    if progress is not None:
        callbacks.append(_epoch_events(progress, config.epochs, label))
    history = model.fit(
        split.x_train, split.y_train, validation_data=(split.x_val, split.y_val),
        epochs=config.epochs, batch_size=config.batch_size, shuffle=True, verbose=0, callbacks=callbacks,
    )
    result = {key: [float(value) for value in values] for key, values in history.history.items()}
    result["best_epoch"] = int(np.argmin(result["val_loss"])) + 1
    result["epochs_run"] = len(result["val_loss"])
    stopped = " (early stop)" if result["epochs_run"] < config.epochs else ""
    report(progress, "train", f"{label}: {result['epochs_run']} epochs{stopped}, best epoch {result['best_epoch']}, "
                              f"val_loss {result['val_loss'][result['best_epoch'] - 1]:.4f}", level="note")
    return result


# Metrics shown with each epoch's event, with short names so the line fits 80 columns.
SHOWN_METRICS = {"loss": "loss", "val_loss": "val_loss", "val_accuracy": "val_acc", "val_mae": "val_mae"}


def _epoch_events(progress, epochs: int, label: str):
    """A keras callback that reports each finished epoch with its latest metrics."""
    import keras

    class EpochEvents(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            report(progress, "train", label, done=0, total=epochs)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = "  ".join(f"{short} {logs[key]:.3f}" for key, short in SHOWN_METRICS.items() if key in logs)
            report(progress, "train", f"{label}  {shown}".rstrip(), done=epoch + 1, total=epochs)

    return EpochEvents()
