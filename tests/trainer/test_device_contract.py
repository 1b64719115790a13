"""The contract with the device: raw values + labels.json + a converted model = the Keras prediction,
without TensorFlow on the device side (edgeml_runtime with LiteRT / ONNX Runtime)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from edgeml.trainer import encode_records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def converted_table_model(table_run, tmp_path_factory):
    from edgeml_converters import convert

    outdir = tmp_path_factory.mktemp("converted")
    # In-process: TensorFlow is already loaded by the training fixture, a child process would reload it.
    manifest = convert(table_run.files[0].parent / "model.keras", outdir, formats=("tflite", "onnx"),
                       modes=("fp32",), isolate=False)
    return manifest, outdir


def test_converted_model_predicts_from_raw_rows(table_run, table_csv, converted_table_model):
    import edgeml_runtime

    manifest, outdir = converted_table_model
    labels = json.loads((table_run.files[0].parent / "labels.json").read_text())
    rows = pd.read_csv(table_csv).drop(columns=["label"]).head(40)
    rows.loc[0, "colour"] = "purple"  # unseen category: all-zero one-hot, must still run
    rows.loc[1, "size"] = np.nan  # gap: filled from labels.json
    vectors = encode_records(rows.to_dict(orient="records"), labels["features"])
    expected = table_run.model.predict(vectors, verbose=0)
    for entry in manifest["artifacts"]:
        model = edgeml_runtime.load(outdir / entry["path"])
        probabilities = next(iter(model.run(vectors).values()))
        # fp32 conversions of a 5-feature MLP: only float rounding differs (observed ~1e-7).
        np.testing.assert_allclose(probabilities, expected, atol=1e-5, err_msg=entry["path"])
        assert [labels["classes"][i] for i in probabilities.argmax(axis=1)] == [
            labels["classes"][i] for i in expected.argmax(axis=1)]


def test_runtime_predictor_reads_labels_json(table_run, table_csv, converted_table_model):
    """The device path: edgeml_runtime.Predictor gets raw row dicts (text, gaps as None) and returns the
    same labels as the Keras model, using only labels.json (copied next to the artifacts) and numpy."""
    from edgeml_runtime import Predictor

    _, outdir = converted_table_model
    frame = pd.read_csv(table_csv).drop(columns=["label"]).head(40)
    rows = [{key: (None if isinstance(value, float) and np.isnan(value) else value)
             for key, value in row.items()} for row in frame.to_dict(orient="records")]
    labels = json.loads((table_run.files[0].parent / "labels.json").read_text())
    expected = table_run.model.predict(encode_records(rows, labels["features"]), verbose=0).argmax(axis=1)
    for artifact in ("model.fp32.tflite", "model.fp32.onnx"):
        predictions = Predictor.from_manifest(outdir, artifact=artifact).predict(rows)
        assert [prediction.label for prediction in predictions] == [labels["classes"][i] for i in expected]
