"""`edgeml train`: a compact Keras model from a table, an image folder, an .npz file or built-in data."""

from __future__ import annotations

import json
import os

import click

from edgeml.commands._trainer_options import quiet_tensorflow
from edgeml.console import ProgressDisplay, stdout_console
from edgeml.trainer.data import BUILTIN_DATASETS
from edgeml.trainer.models import ARCHITECTURES


@click.command()
@click.argument("data", required=False, type=click.Path(dir_okay=True))
@click.option("--dataset", type=click.Choice(BUILTIN_DATASETS), help="Use a built-in dataset instead of DATA.")
@click.option("--target", help="Target column of a CSV/Parquet table (default: a column named target/label/class/y).")
@click.option("--task", type=click.Choice(["auto", "classification", "regression"]), default="auto",
              show_default=True, help="Inferred from the target when 'auto'.")
@click.option("--image-size", type=click.IntRange(4, 512), default=32, show_default=True,
              help="Images are resized to SIZE x SIZE.")
@click.option("--arch", "architecture", type=click.Choice(ARCHITECTURES), default="auto", show_default=True,
              help="mlp for tables, cnn for images; dscnn uses depthwise-separable convolutions.")
@click.option("--width", type=click.FloatRange(0.1, 8.0), default=1.0, show_default=True,
              help="Multiplier for every layer's units / filters.")
@click.option("--depth", type=click.IntRange(1, 6), default=2, show_default=True,
              help="Hidden layers (MLP) or convolution blocks (CNN).")
@click.option("--epochs", type=click.IntRange(1, 10000), default=60, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 65536), default=32, show_default=True)
@click.option("--lr", "learning_rate", type=click.FloatRange(1e-6, 1.0), default=1e-3, show_default=True)
@click.option("--patience", type=click.IntRange(1, 1000), default=8, show_default=True,
              help="Early stopping: epochs without a better validation loss.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same metrics.")
@click.option("--search", "search_trials", type=click.IntRange(0, 27), default=0,
              help="Try N configurations of width/depth/learning rate; keep the best on validation.")
@click.option("--calibration-samples", type=click.IntRange(1, 100000), default=300, show_default=True)
@click.option("--save-h5", is_flag=True, help="Also write model.h5 (legacy Keras format).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default="edgeml-model",
              show_default=True, help="Output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json on stdout (logs go to stderr).")
def train(data, dataset, target, task, image_size, architecture, width, depth, epochs, batch_size,
          learning_rate, patience, seed, search_trials, calibration_samples, save_h5, no_plots, outdir,
          as_json):
    """Train a compact Keras model from DATA (CSV/Parquet, image folder, .npz) or --dataset."""
    quiet_tensorflow()
    from edgeml_runtime.progress import report

    from edgeml.trainer import FitConfig, ModelConfig, load_data
    from edgeml.trainer import train as run_training

    with ProgressDisplay("training") as display:
        loaded = load_data(data, dataset=dataset, target=target, task=task, image_size=image_size)
        report(display, "data", _describe(loaded), level="note")
        for note in loaded.notes:
            report(display, "data", f"  note: {note}", level="note")
        result = run_training(
            loaded, outdir,
            model_config=ModelConfig(architecture=architecture, width=width, depth=depth, learning_rate=learning_rate),
            fit_config=FitConfig(epochs=epochs, batch_size=batch_size, patience=patience, seed=seed),
            search_trials=search_trials, save_h5=save_h5, make_plots=not no_plots,
            calibration_samples=calibration_samples, progress=display,
        )
    if as_json:  # stdout: only the JSON (the search's trials are in it too)
        click.echo(json.dumps(result.metrics, indent=2))
        return
    console = stdout_console()  # the results; progress and notes went to stderr
    if result.trials:
        _print_trials(console, result.trials)
    _print_summary(console, result, outdir)


def _describe(data) -> str:
    classes = f", {data.num_classes} classes" if data.classes else ""
    return f"data {data.source}: {len(data.y)} examples, input {tuple(data.x.shape[1:])}, {data.task}{classes}"


def _print_trials(console, trials) -> None:
    from rich.table import Table

    table = Table(title="hyper-parameter search (validation split)")
    for column in ("trial", "width", "depth", "lr", "params", "epochs", "val loss", "val score", "s"):
        table.add_column(column, justify="right")
    for row in trials:
        table.add_row(
            f"{row['trial']}{' *' if row.get('best') else ''}", f"{row['width']:g}", str(row["depth"]),
            f"{row['learning_rate']:g}", f"{row['parameters']:,}", str(row["epochs"]),
            f"{row['val_loss']:.4f}", f"{row['val_score']:.4f}", f"{row['seconds']:.1f}",
        )
    console.print(table)


def _print_summary(console, result, outdir) -> None:
    from rich.table import Table

    test = result.metrics["test"]
    console.print(f"test split: {test['samples']} examples never seen in training")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    keys = ("accuracy", "precision_macro", "recall_macro", "f1_macro") if "accuracy" in test else ("mae", "rmse", "r2")
    for key in keys:
        table.add_row(key, f"{test[key]:.4f}")
    console.print(table)
    training = result.metrics["training"]
    console.print(f"trained {training['epochs_run']} epochs (best {training['best_epoch']}) "
                  f"in {training['seconds']:.1f} s; wrote {len(result.files)} files to {os.fspath(outdir)}/")
