"""Training: the files it writes, the baked-in preprocessing, the targets and reproducibility."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeml.trainer import FitConfig, ModelConfig, encode_records, load_data, train

pytestmark = pytest.mark.slow


def test_breast_cancer_target(breast_cancer_run):
    # Target from the issue: a scikit-learn tabular dataset reaches >= 0.90 test accuracy.
    test = breast_cancer_run.metrics["test"]
    assert test["accuracy"] >= 0.90
    assert test["samples"] == 114  # 20 % of 569, stratified
    assert set(test["per_class"]) == {"malignant", "benign"}
    assert np.sum(test["confusion_matrix"]) == test["samples"]


def test_outputs_are_written_and_load(table_run):
    import keras

    outdir = table_run.files[0].parent
    names = {path.name for path in outdir.iterdir()}
    assert {"model.keras", "model.h5", "labels.json", "metrics.json", "calibration.npz", "test.npz",
            "training_curves.png", "confusion_matrix.png"} <= names
    assert not list(outdir.parent.glob(".model.tmp-*"))  # staging folder cleaned up
    model = keras.saving.load_model(outdir / "model.keras", safe_mode=True)
    layers = {type(layer).__name__ for layer in model.layers}
    assert "Lambda" not in layers and "Normalization" in layers
    assert model.input_shape == (None, 5)  # fixed feature size, dynamic batch
    for png in ("training_curves.png", "confusion_matrix.png"):
        assert (outdir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_json_lets_a_device_predict_from_raw_rows(table_run, table_csv):
    """Raw CSV rows -> encode_records(labels.json) -> model -> classes[argmax] gives the trained labels."""
    import keras
    import pandas as pd

    outdir = table_run.files[0].parent
    labels = json.loads((outdir / "labels.json").read_text())
    assert labels["schema"] == "edgeml.labels/1" and labels["classes"] == ["big", "small"]
    assert labels["inputs"] == [{"name": "features", "shape": [None, 5], "dtype": "float32"}]
    assert labels["preprocessing"]["in_model"][0]["op"] == "normalize"
    frame = pd.read_csv(table_csv).drop_duplicates()
    vectors = encode_records(frame.drop(columns=["label"]).to_dict(orient="records"), labels["features"])
    model = keras.saving.load_model(outdir / "model.keras")
    predicted = np.asarray(labels["classes"])[model.predict(vectors, verbose=0).argmax(axis=1)]
    # The rule behind the labels is learnable from these features; 40 epochs on ~100 rows gets most right.
    assert np.mean(predicted == frame["label"].to_numpy()) >= 0.8


def test_calibration_is_class_balanced_raw_training_data(breast_cancer_run):
    outdir = breast_cancer_run.files[0].parent
    with np.load(outdir / "calibration.npz") as calibration:
        assert sorted(calibration.files) == ["features", "x"]
        sample = calibration["x"]
        np.testing.assert_array_equal(sample, calibration["features"])
    split = breast_cancer_run.split
    assert len(sample) == 300
    train_rows = {row.tobytes() for row in split.x_train}
    assert all(row.tobytes() in train_rows for row in sample)  # raw training rows, not scaled, not test
    labels = np.asarray([split.y_train[np.flatnonzero((split.x_train == row).all(axis=1))[0]] for row in sample])
    # Balanced: the 138 malignant training rows (fewer than the fair share of 150) all go in, benign fills up.
    malignant_rows = int(np.sum(split.y_train == 0))
    assert malignant_rows < 150
    assert np.bincount(labels).tolist() == [malignant_rows, 300 - malignant_rows]


def test_same_seed_same_metrics(tmp_path):
    data = load_data(dataset="wine")
    runs = [train(data, tmp_path / f"run{i}", fit_config=FitConfig(epochs=15, seed=seed), make_plots=False)
            for i, seed in enumerate((3, 3, 4))]
    assert runs[0].metrics["test"] == runs[1].metrics["test"]
    assert runs[0].history["val_loss"] == runs[1].history["val_loss"]  # bit for bit, not approximately
    assert runs[0].history["val_loss"] != runs[2].history["val_loss"]  # the seed does matter


def test_regression_predicts_in_target_units(tmp_path):
    run = train(load_data(dataset="diabetes"), tmp_path / "model", fit_config=FitConfig(epochs=60, seed=0))
    test = run.metrics["test"]
    assert set(test) >= {"mae", "rmse", "r2"}
    # The diabetes targets span 25..346 (std ~77): a model outputting standardised values would have
    # an MAE near the mean (~150); a useful one explains part of the variance.
    assert test["r2"] > 0.3 and test["mae"] < 60
    assert (run.files[0].parent / "predicted_vs_true.png").exists()


def test_image_folder_model(tmp_path, image_folder):
    data = load_data(str(image_folder), image_size=16)
    run = train(data, tmp_path / "model", model_config=ModelConfig(architecture="dscnn", width=0.5),
                fit_config=FitConfig(epochs=30, batch_size=8, seed=0), make_plots=False)
    # Dark versus light images: trivially separable, so the small CNN must get the 5 test images right.
    assert run.metrics["test"]["accuracy"] == 1.0
    layers = {type(layer).__name__ for layer in run.model.layers}
    assert {"Rescaling", "SeparableConv2D"} <= layers
    labels = run.labels
    assert labels["inputs"][0]["shape"] == [None, 16, 16, 3]
    assert labels["image"]["color_mode"] == "rgb"
    assert labels["preprocessing"]["in_model"][0]["scale"] == pytest.approx(1 / 255)


def test_width_multiplier_scales_the_model(tmp_path):
    from edgeml.trainer.models import build_model

    data = load_data(dataset="digits")
    small = build_model(ModelConfig(width=0.5), data, data.x[:50])
    large = build_model(ModelConfig(width=2.0), data, data.x[:50])
    assert large.count_params() > 4 * small.count_params()


def test_search_reports_each_trial(tmp_path):
    run = train(load_data(dataset="wine"), tmp_path / "model", fit_config=FitConfig(epochs=5, seed=0),
                search_trials=3, make_plots=False)
    trials = run.metrics["search"]
    assert [row["trial"] for row in trials] == [1, 2, 3]
    assert trials[0]["width"] == 1.0 and trials[0]["depth"] == 2  # the user's configuration is trial 1
    best = [row for row in trials if row.get("best")]
    assert len(best) == 1 and best[0]["val_score"] == max(row["val_score"] for row in trials)
    assert run.metrics["model"]["parameters"] == best[0]["parameters"]


def test_failed_run_keeps_previous_outputs(tmp_path, monkeypatch, breast_cancer_run):
    """A failure while writing leaves the earlier model in place (simulated disk error, named as such)."""
    from edgeml.trainer import plots

    outdir = tmp_path / "model"
    first = train(load_data(dataset="wine"), outdir, fit_config=FitConfig(epochs=3, seed=0), make_plots=False)
    before = {path.name: path.read_bytes() for path in first.files}

    def simulated_disk_error(*args, **kwargs):
        raise OSError("simulated: no space left on device")

    monkeypatch.setattr(plots, "training_curves", simulated_disk_error)
    with pytest.raises(OSError, match="simulated"):
        train(load_data(dataset="wine"), outdir, fit_config=FitConfig(epochs=3, seed=1))
    assert {path.name: path.read_bytes() for path in outdir.iterdir()} == before
    assert not list(tmp_path.glob(".model.tmp-*"))
