"""Splitting, seeding and fitting, with a rich progress bar that advances once per epoch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

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


def fit(model, split: Split, config: FitConfig, *, console=None, label: str = "training"):
    """Fit with early stopping on validation loss, keeping the best weights. Returns the history dict."""
    import keras

    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    callbacks = [stop]
    if console is not None:
        callbacks.append(_progress_callback(console, config.epochs, label))
    history = model.fit(
        split.x_train, split.y_train, validation_data=(split.x_val, split.y_val),
        epochs=config.epochs, batch_size=config.batch_size, shuffle=True, verbose=0, callbacks=callbacks,
    )
    result = {key: [float(value) for value in values] for key, values in history.history.items()}
    result["best_epoch"] = int(np.argmin(result["val_loss"])) + 1
    result["epochs_run"] = len(result["val_loss"])
    return result


# Metrics shown next to the progress bar, with short names so the line fits 80 columns.
SHOWN_METRICS = {"loss": "loss", "val_loss": "val_loss", "val_accuracy": "val_acc", "val_mae": "val_mae"}


def _progress_callback(console, epochs: int, label: str):
    """A keras callback driving a rich progress bar: one step per epoch, latest metrics shown."""
    import keras
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class RichEpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(),
                console=console, transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task(label, total=epochs, metrics="")

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = "  ".join(f"{short} {logs[key]:.3f}" for key, short in SHOWN_METRICS.items() if key in logs)
            self.progress.update(self.task, advance=1, metrics=shown)

        def on_train_end(self, logs=None):
            if self.model.stop_training:  # early stopping: show where it ended
                self.progress.update(self.task, description=f"{label} (early stop)")
            self.progress.stop()

    return RichEpochProgress()

