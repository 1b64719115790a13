"""Predictor: labels, scores and top-k from raw samples, with metadata found next to the model, in a
conversion manifest, in a bundle or a deployment. Real LiteRT / ONNX Runtime on the committed models."""

from __future__ import annotations

import hashlib
import json
import shutil

import edgeml_runtime as er
import numpy as np
import pytest
from edgeml_runtime import InputError, ModelLoadError, Predictor

from tests.serving.serving_support import CLASSES, FEATURES, make_release, write_labels
from tests.support.marks import needs_backend_for, require_backend_for
from tests.support.models import MLP_FP32, MLP_INT8, MLP_ONNX, TWO_IO


@pytest.fixture(scope="module")
def reference():
    with np.load(MLP_FP32.parent / "reference.npz") as archive:
        return archive["mlp_inputs"], archive["mlp_outputs"]


@pytest.fixture
def labelled_model(tmp_path):
    require_backend_for(MLP_FP32)
    shutil.copyfile(MLP_FP32, tmp_path / MLP_FP32.name)
    write_labels(tmp_path)
    return tmp_path / MLP_FP32.name


def test_classifier_gives_label_score_and_top_k(labelled_model, reference):
    inputs, keras_outputs = reference
    predictor = Predictor.from_model(labelled_model)
    assert predictor.metadata.classes == CLASSES  # labels.json beside the model was found
    for sample, expected in zip(inputs, keras_outputs):
        result = predictor.predict(sample)
        best = int(np.argmax(expected))
        assert result.label == CLASSES[best] and result.index == best
        # 1e-5: TFLite and Keras float32 kernels sum in different orders.
        assert result.score == pytest.approx(float(expected[best]), abs=1e-5)
        assert len(result.top_k) == 3 and result.top_k[0] == (result.label, result.score)
        scores = [score for _, score in result.top_k]
        assert scores == sorted(scores, reverse=True)
        assert {label for label, _ in result.top_k} <= set(CLASSES)
    assert predictor.predict(inputs[0], top_k=4).top_k[-1][1] == pytest.approx(float(np.min(keras_outputs[0])),
                                                                              abs=1e-5)


def test_equal_scores_rank_in_class_order(labelled_model):
    predictor = Predictor.from_model(labelled_model)
    # Short rows take the plain-Python ranking, 100 classes numpy's argsort: both keep ties in class order.
    (tied,) = predictor.interpret(np.array([[0.1, 0.4, 0.1, 0.4]], np.float32), top_k=4)
    assert tied.index == 1
    assert [label for label, _ in tied.top_k] == [CLASSES[1], CLASSES[3], CLASSES[0], CLASSES[2]]
    from edgeml_runtime.predictor import _top_indices

    wide = np.zeros(100, np.float32)
    wide[[7, 3, 50]] = 0.5
    assert _top_indices(wide, wide.tolist(), 4) == [3, 7, 50, 0]
    assert _top_indices(wide[:10], wide[:10].tolist(), 4) == [3, 7, 0, 1]


def test_batch_equals_samples_one_by_one(labelled_model, reference):
    inputs, _ = reference
    predictor = Predictor.from_model(labelled_model)
    batch = predictor.predict(inputs)
    assert isinstance(batch, list) and len(batch) == len(inputs)
    for from_batch, sample in zip(batch, inputs):
        alone = predictor.predict(sample.tolist())  # nested Python lists, as JSON delivers them
        assert from_batch.label == alone.label
        # 1e-6: a batch of 5 and a batch of 1 may use different kernel tilings in XNNPACK.
        np.testing.assert_allclose(from_batch.output, alone.output, atol=1e-6)


def test_version_defaults_to_the_model_hash(labelled_model):
    predictor = Predictor.from_model(labelled_model)
    assert predictor.version == hashlib.sha256(MLP_FP32.read_bytes()).hexdigest()[:12]
    assert predictor.predict(np.zeros(8)).version == predictor.version
    assert Predictor.from_model(labelled_model, version="2024.1").predict(np.zeros(8)).version == "2024.1"


def test_rows_are_encoded_exactly_like_the_trainer(labelled_model):
    features = pytest.importorskip("edgeml.trainer.features")
    rows = [{"ax": 0.1, "ay": -1.5, "az": 9.8, "gx": 0.0, "gy": 2.0, "gz": None, "mount": "belt"},
            {"ax": 1.0, "ay": 0.5, "az": float("nan"), "gx": 3.0, "gy": -2.0, "gz": 1.0, "mount": "pocket"}]
    expected = features.encode_records(rows, FEATURES)
    np.testing.assert_array_equal(er.metadata.encode_records(rows, FEATURES), expected)
    predictor = Predictor.from_model(labelled_model)
    from_rows = predictor.predict(rows)
    from_vectors = predictor.predict(expected)
    assert [p.label for p in from_rows] == [p.label for p in from_vectors]
    np.testing.assert_array_equal(predictor.predict(rows[0]).output, from_vectors[0].output)


def test_bad_rows_are_named(labelled_model):
    predictor = Predictor.from_model(labelled_model)
    row = {"ax": 0.1, "ay": 0, "az": 0, "gx": 0, "gy": 0, "gz": 0, "mount": "belt"}
    # Extra fields (ids, timestamps) are ignored, as the trainer ignores them.
    np.testing.assert_array_equal(predictor.predict({**row, "id": 3}).output, predictor.predict(row).output)
    without_ax = {key: value for key, value in row.items() if key != "ax"}
    with pytest.raises(InputError, match=r"missing column\(s\) \['ax'\].*send null"):
        predictor.predict(without_ax)
    with pytest.raises(InputError, match="column 'ay' is numeric"):
        predictor.predict({**row, "ay": "fast"})


@needs_backend_for(MLP_ONNX)
def test_regression_returns_the_raw_array():
    predictor = Predictor.from_model(MLP_ONNX, task="regression")
    sample = np.linspace(-1, 1, 8, dtype=np.float32)
    result = predictor.predict(sample)
    expected = next(iter(er.load(MLP_ONNX).run(sample[None]).values()))[0]
    np.testing.assert_array_equal(result.value, expected)
    assert result.label is None and result.to_dict()["value"] == expected.tolist()


@needs_backend_for(MLP_INT8)
def test_int8_model_predicts_real_scores(tmp_path, reference):
    inputs, keras_outputs = reference
    shutil.copyfile(MLP_INT8, tmp_path / MLP_INT8.name)
    write_labels(tmp_path)
    results = Predictor.from_model(tmp_path / MLP_INT8.name).predict(inputs)
    assert [r.label for r in results] == [CLASSES[i] for i in keras_outputs.argmax(axis=1)]
    # 0.02: int8 weights and activations; the output step alone is 1/256 ≈ 0.004 (measured 0.0044 max).
    np.testing.assert_allclose(np.stack([r.output for r in results]), keras_outputs, atol=0.02)


@needs_backend_for(MLP_FP32)
def test_labels_of_another_model_are_refused(tmp_path):
    shutil.copyfile(MLP_FP32, tmp_path / MLP_FP32.name)
    write_labels(tmp_path, classes=["a", "b", "c"])
    with pytest.raises(ModelLoadError, match="names 3 classes but mlp_fp32.tflite outputs 4 scores"):
        Predictor.from_model(tmp_path / MLP_FP32.name)
    (tmp_path / "labels.json").write_text('{"schema": "something/2"}')
    with pytest.raises(ModelLoadError, match="is not edgeml.labels/1"):
        Predictor.from_model(tmp_path / MLP_FP32.name)


@needs_backend_for(MLP_FP32)
def test_without_labels_scores_are_numbered(tmp_path):
    predictor = Predictor.from_model(MLP_FP32)
    assert predictor.task == "classification" and predictor.metadata.classes == ["0", "1", "2", "3"]
    assert Predictor.from_model(MLP_FP32, classes=list("wxyz")).predict(np.zeros(8)).label in "wxyz"


def _conversion_dir(tmp_path, *, int8_passed=True):
    out = tmp_path / "converted"
    out.mkdir()
    artifacts = []
    for model, quantization, passed in ((MLP_INT8, "int8", int8_passed), (MLP_ONNX, "fp32", True)):
        shutil.copyfile(model, out / model.name)
        artifacts.append({"path": model.name, "format": model.suffix[1:], "quantization": quantization,
                          "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
                          "validation": {"samples": 8, "passed": passed}})
    write_labels(out)
    manifest = {"schema": "edgeml.manifest/1", "artifacts": artifacts, "metadata": {"labels": "labels.json"}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@needs_backend_for(MLP_INT8, MLP_ONNX)
def test_from_manifest_picks_an_artifact_and_its_labels(tmp_path):
    out = _conversion_dir(tmp_path)
    first = Predictor.from_manifest(out)
    assert first.model.path.name == MLP_INT8.name and first.metadata.classes == CLASSES
    assert first.version == hashlib.sha256(MLP_INT8.read_bytes()).hexdigest()[:12]
    onnx = Predictor.from_manifest(out / "manifest.json", artifact="onnx")
    assert onnx.model.format == "onnx"
    sample = np.full(8, 0.3, dtype=np.float32)
    assert onnx.predict(sample).label == first.predict(sample).label
    with pytest.raises(ModelLoadError, match="no artifact matches 'fp16'"):
        Predictor.from_manifest(out, artifact="fp16")


@needs_backend_for(MLP_ONNX)
def test_from_manifest_skips_artifacts_that_failed_their_check(tmp_path):
    out = _conversion_dir(tmp_path, int8_passed=False)
    assert Predictor.from_manifest(out).model.path.name == MLP_ONNX.name
    (out / MLP_ONNX.name).unlink()
    with pytest.raises(ModelLoadError, match="mlp_fp32.onnx is missing"):
        Predictor.from_manifest(out)


def test_from_bundle_and_deployment_use_the_release_version(tmp_path, deployment):
    release = make_release(tmp_path / "unpacked", "2.0.1")
    predictor = Predictor.from_bundle(release)
    assert predictor.version == "2.0.1" and predictor.metadata.classes == CLASSES
    assert Predictor.from_bundle(deployment).predict(np.zeros(8)).version == "v1"


def test_wrong_inputs_say_what_was_expected(labelled_model):
    predictor = Predictor.from_model(labelled_model)
    with pytest.raises(InputError, match=r"expected one sample shaped \(8,\), got shape \(7,\)"):
        predictor.predict([0.0] * 7)
    with pytest.raises(InputError, match=r"expected one sample shaped \(8,\) or a batch"):
        predictor.predict(np.zeros((1, 1, 8)))
    with pytest.raises(InputError, match="rows of different lengths"):
        predictor.predict([[1, 2], [1, 2, 3]])
    with pytest.raises(InputError, match="expected numbers"):
        predictor.predict(["a"] * 8)
    with pytest.raises(InputError, match="non-finite"):
        predictor.predict([float("nan")] * 8)
    # Arrays of the sample's shape take predict's fast path; Model.run still checks them.
    with pytest.raises(InputError, match="expected numbers"):
        predictor.predict(np.array(["a"] * 8))
    with pytest.raises(InputError, match="non-finite"):
        predictor.predict(np.full(8, np.inf, np.float32))
    unlabelled = Predictor.from_model(MLP_FP32)
    with pytest.raises(InputError, match=r"keys \['x'\]; expected the model's inputs \['features'\]"):
        unlabelled.predict({"x": [0] * 8})


@needs_backend_for(TWO_IO)
def test_two_input_model_takes_a_dict():
    predictor = Predictor.from_model(TWO_IO)
    rng = np.random.default_rng(0)
    image, meta = rng.normal(size=(4, 4, 1)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    result = predictor.predict({"image": image, "meta": meta})
    expected = er.load(TWO_IO).run({"image": image[None], "meta": meta[None]})[predictor.output_spec.name][0]
    np.testing.assert_array_equal(result.output, expected)
    with pytest.raises(InputError, match="has 2 inputs"):
        predictor.predict([1, 2, 3])
