"""Serving a model without labels.json: class scores only when the outputs look like probabilities; an
autoencoder, a regressor or a multi-output model answers with its outputs as arrays, by name. `task=` /
`output=` (serve --task / --output) override the guess. Committed tiny models, real backends."""

from __future__ import annotations

import json
import shutil
import urllib.request

import edgeml_runtime as er
import numpy as np
import pytest
from edgeml_runtime import InputError, Predictor
from edgeml_runtime.metadata import guess_task, looks_like_probabilities

from tests.serving.serving_support import CLASSES, make_release, switch, write_labels
from tests.support.local_servers import ServeProcess
from tests.support.marks import model_params, needs_backend_for
from tests.support.models import DATA, MLP_FP32, TWO_IO

AUTOENCODER = DATA / "autoencoder_fp32.tflite"


@model_params("autoencoder_fp32.tflite", "autoencoder_fp32.onnx")
def test_autoencoder_answers_with_its_reconstruction(model_file):
    predictor = Predictor.from_model(DATA / model_file)
    assert predictor.task == "arrays" and predictor.metadata.classes == []
    frame = np.sin(np.arange(640, dtype=np.float32) / 10)
    result = predictor.predict(frame)
    (name,) = predictor.output_names
    expected = er.load(DATA / model_file).run(frame[None])[name][0]
    assert result.label is None and result.top_k == []
    np.testing.assert_array_equal(result.outputs[name], expected)
    answer = result.to_dict()
    assert set(answer) == {"outputs", "version"} and len(answer["outputs"][name]) == 640
    facts = predictor.describe()
    assert facts["task"] == "arrays" and facts["classes"] is None and facts["class_count"] is None
    assert facts["task_basis"].startswith("guessed: the output does not look like class probabilities")


@model_params("two_io_fp32.tflite", "two_io_fp32.onnx")
def test_every_output_of_a_two_output_model_is_returned(model_file):
    predictor = Predictor.from_model(DATA / model_file)
    model = er.load(DATA / model_file)
    assert predictor.task == "arrays" and predictor.output_names == [spec.name for spec in model.outputs]
    with np.load(DATA / "reference.npz") as reference:
        image, meta = reference["two_io_image"], reference["two_io_meta"]
        results = predictor.predict({"image": image, "meta": meta})
        expected = model.run({"image": image, "meta": meta})
        assert len(results) == 2
        for index, result in enumerate(results):
            assert set(result.outputs) == set(expected)
            for name, value in expected.items():
                np.testing.assert_allclose(result.outputs[name], value[index], atol=1e-6)
        widths = sorted(len(value) for value in results[0].to_dict()["outputs"].values())
        assert widths == [1, 3]  # the score and the three logits


@model_params("two_io_fp32.tflite")
def test_output_and_task_override_the_guess(model_file):
    model = er.load(DATA / model_file)
    logits = next(spec.name for spec in model.outputs if spec.shape[-1] == 3)
    score = next(spec.name for spec in model.outputs if spec.shape[-1] == 1)
    sample = {"image": np.zeros((4, 4, 1), np.float32), "meta": np.ones(3, np.float32)}
    only_logits = Predictor.from_model(DATA / model_file, output=logits)
    assert only_logits.task == "arrays" and list(only_logits.predict(sample).outputs) == [logits]  # logits: no probs
    as_classes = Predictor.from_model(DATA / model_file, output=logits, task="classification")
    assert as_classes.predict(sample).label in {"0", "1", "2"}
    as_value = Predictor.from_model(DATA / model_file, output=score)
    assert as_value.task == "regression" and as_value.predict(sample).to_dict().keys() == {"value", "version"}
    with pytest.raises(InputError, match=f"no output named 'nope'; its outputs are: .*{logits}"):
        Predictor.from_model(DATA / model_file, output="nope")


@needs_backend_for(MLP_FP32)
def test_probabilities_are_still_classes_without_labels():
    predictor = Predictor.from_model(MLP_FP32)  # softmax output, no labels.json
    assert predictor.task == "classification" and predictor.metadata.classes == ["0", "1", "2", "3"]
    facts = predictor.describe()
    assert facts["classes"] is None and facts["class_count"] == 4  # indices are not listed as names
    assert predictor.predict(np.zeros(8)).label in {"0", "1", "2", "3"}


def test_probability_rows_and_names():
    assert looks_like_probabilities(np.array([[0.2, 0.8], [0.5, 0.5]]))
    assert looks_like_probabilities(np.array([[0.0, 0.996]]))  # int8 softmax: a quantum or two off
    assert not looks_like_probabilities(np.array([[0.7, 0.7]]))
    assert not looks_like_probabilities(np.array([[-0.5, 1.5]]))
    assert not looks_like_probabilities(np.array([[1.0]]))

    class Spec:
        def __init__(self, name, shape):
            self.name, self.shape = name, shape

    assert guess_task([Spec("softmax_1", (None, 5))]).task == "classification"  # named like probabilities
    assert guess_task([Spec("logits", (None, 5))], {"logits": np.array([[2.0, -1, 0, 0, 0]])}).task == "arrays"
    assert guess_task([Spec("y", (None, 1))]).task == "regression"
    assert guess_task([Spec("a", (None, 2)), Spec("b", (None, 2))]).task == "arrays"


@needs_backend_for(AUTOENCODER)
def test_serving_an_autoencoder_over_http(tmp_path):
    """The anomaly-detection case of the issue: no "label 261" and no 640 classes in /health."""
    model = tmp_path / AUTOENCODER.name
    shutil.copyfile(AUTOENCODER, model)
    serve = ServeProcess([model, "--http", "127.0.0.1:0"], tmp_path)
    try:
        url = serve.http_url()
        frame = [round(float(v), 4) for v in np.cos(np.arange(640) / 7)]
        answer = post(url + "/predict", {"inputs": frame})
        batch = post(url + "/predict", {"inputs": [frame, frame]})
        with urllib.request.urlopen(url + "/health", timeout=10) as response:
            health = json.load(response)
    finally:
        serve.stop()
    (name, values), = answer["prediction"]["outputs"].items()
    assert len(values) == 640 and "label" not in answer["prediction"] and "top_k" not in answer["prediction"]
    assert [len(p["outputs"][name]) for p in batch["predictions"]] == [640, 640]
    facts = health["model"]
    assert facts["task"] == "arrays" and facts["classes"] is None and facts["outputs"] == [name]
    assert len(json.dumps(health)) < 3000  # the facts of a model, not a list of 640 made-up class names


@needs_backend_for(TWO_IO)
def test_serve_output_and_task_flags(tmp_path):
    """`serve --output NAME` returns that output only; `--task` overrides labels.json and the guess; both
    reach a deployment's ReloadingPredictor too."""
    deployment = tmp_path / "deploy"
    make_release(deployment, "v1", model=TWO_IO, labels=False)
    switch(deployment, "v1")
    names = [spec.name for spec in er.load(TWO_IO).outputs]
    serve = ServeProcess([deployment, "--http", "127.0.0.1:0", "--output", names[0]], tmp_path)
    try:
        url = serve.http_url()
        sample = {"image": np.zeros((4, 4, 1)).tolist(), "meta": [0.1, 0.2, 0.3]}
        answer = post(url + "/predict", {"inputs": sample})
    finally:
        serve.stop()
    assert list(answer["prediction"]["outputs"]) == [names[0]]

    labelled = tmp_path / "labelled"
    labelled.mkdir()
    shutil.copyfile(MLP_FP32, labelled / MLP_FP32.name)
    write_labels(labelled)
    serve = ServeProcess([labelled / MLP_FP32.name, "--http", "127.0.0.1:0", "--task", "arrays"], tmp_path)
    try:
        answer = post(serve.http_url() + "/predict", {"inputs": [0.5] * 8})
    finally:
        serve.stop()
    assert list(answer["prediction"]) == ["outputs", "version"]  # not CLASSES' labels
    assert not set(CLASSES) & set(json.dumps(answer).split('"'))


def post(url: str, payload) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)
