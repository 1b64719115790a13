"""Predictor and `python -m edgeml_runtime serve` default to the manifest's measured recommendation (`recommended`,
written by edgeml convert / edgeml select) when a backend here runs it; otherwise they take the first passing
artifact and say why. An explicit artifact always wins, and a recommendation pointing outside the folder is
refused. Real LiteRT / ONNX Runtime on the committed tiny models (tests.support.conversions)."""

from __future__ import annotations

import json
import shutil
import urllib.request

import numpy as np
import pytest
from edgeml_runtime import ModelLoadError, Predictor
from edgeml_runtime.locate import locate

from tests.support.conversions import CLASSES, conversion_dir
from tests.support.local_servers import ServeProcess
from tests.support.marks import needs_backend_for
from tests.support.models import MLP_FP32, MLP_INT8, MLP_ONNX

pytestmark = needs_backend_for(MLP_FP32, MLP_ONNX)


@pytest.fixture(scope="module")
def reference():
    with np.load(MLP_FP32.parent / "reference.npz") as archive:
        return archive["mlp_inputs"], archive["mlp_outputs"]


def _rewrite(folder, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_from_manifest_loads_the_recommended_artifact_not_the_first(tmp_path, reference):
    out = conversion_dir(tmp_path / "converted")  # recommends mlp_fp32.onnx, listed last
    predictor = Predictor.from_manifest(out)
    assert predictor.model.path.name == MLP_ONNX.name and predictor.model.format == "onnx"
    assert predictor.source.recommended and predictor.source.note is None
    assert predictor.metadata.classes == CLASSES  # the manifest's labels.json came along
    inputs, keras_outputs = reference
    # 1e-5: ONNX Runtime and Keras float32 kernels sum in different orders.
    outputs = predictor.model.run(inputs)[predictor.output_spec.name]
    np.testing.assert_allclose(outputs, keras_outputs, atol=1e-5)
    assert Predictor.from_manifest(out / "manifest.json").model.path.name == MLP_ONNX.name  # the file as the folder


def test_an_explicit_artifact_wins_over_the_recommendation(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    chosen = Predictor.from_manifest(out, artifact="int8")
    assert chosen.model.path.name == MLP_INT8.name and not chosen.source.recommended
    assert locate(out, artifact=MLP_FP32.name).model.name == MLP_FP32.name


def test_without_a_recommendation_the_first_passing_artifact_with_a_note(tmp_path):
    out = conversion_dir(tmp_path / "converted", recommended=None)
    source = Predictor.from_manifest(out).source
    assert source.model.name == MLP_FP32.name and not source.recommended
    assert "has no measured recommendation" in source.note and "edgeml select" in source.note


def test_a_recommendation_naming_a_failed_artifact_is_refused(tmp_path):
    # Only a hand edit makes one (convert and select recommend passing artifacts); `edgeml select` repairs it.
    out = conversion_dir(tmp_path / "converted", failed={MLP_ONNX.name})
    with pytest.raises(ModelLoadError, match=f"names {MLP_ONNX.name}, which failed validation; re-run edgeml select"):
        locate(out)


def test_a_backend_that_cannot_run_the_recommendation_falls_back_with_a_note(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    predictor = Predictor.from_manifest(out, backend="litert")
    assert predictor.model.path.name == MLP_FP32.name and predictor.model.backend == "litert"
    assert "needs onnxruntime, not --backend litert" in predictor.source.note
    with pytest.raises(ModelLoadError, match="no artifact matches 'fp16'"):
        Predictor.from_manifest(out, artifact="fp16")


@pytest.mark.parametrize("path, message", [
    ("../elsewhere/mlp_fp32.onnx", "must be relative and inside the directory"),
    ("/etc/passwd", "must be relative and inside the directory"),
    ("other.onnx", "not one of the listed artifacts"),
])
def test_a_recommendation_outside_the_listed_artifacts_is_refused(tmp_path, path, message):
    out = conversion_dir(tmp_path / "converted")
    (tmp_path / "elsewhere").mkdir()
    shutil.copyfile(MLP_ONNX, tmp_path / "elsewhere" / MLP_ONNX.name)
    _rewrite(out, lambda manifest: manifest["recommended"].update(path=path))
    with pytest.raises(ModelLoadError, match=message):
        Predictor.from_manifest(out)


def test_a_bundle_with_its_manifest_follows_the_recommendation(tmp_path):
    release = tmp_path / "release"
    conversion_dir(release / "models")
    (release / "edgeml-bundle.json").write_text(json.dumps({
        "schema": "edgeml.bundle/1", "name": "sensor", "version": "1.2.0",
        "models": [{"path": f"models/{model.name}"} for model in (MLP_FP32, MLP_INT8, MLP_ONNX)]}))
    predictor = Predictor.from_bundle(release)
    assert predictor.model.path.name == MLP_ONNX.name and predictor.version == "1.2.0"
    assert Predictor.from_bundle(release, artifact="int8").model.path.name == MLP_INT8.name


def test_serve_serves_the_recommended_artifact_and_says_so(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    serve = ServeProcess([out, "--http", "127.0.0.1:0"], tmp_path)
    try:
        url = serve.http_url()
        with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
            health = json.loads(response.read())
        assert health["model"]["model"].endswith(MLP_ONNX.name) and health["model"]["format"] == "onnx"
        assert f"serving {MLP_ONNX.name} (the manifest's measured recommendation)" in serve.stderr
    finally:
        serve.stop()


def test_serve_says_why_it_does_not_serve_the_recommendation(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    serve = ServeProcess([out, "--http", "127.0.0.1:0", "--backend", "litert"], tmp_path)
    try:
        serve.http_url()
        stderr = serve.stderr
        assert (f"note: the recommended {MLP_ONNX.name} needs onnxruntime, not --backend litert; using "
                f"{MLP_FP32.name}") in stderr
        assert f"serving {MLP_FP32.name}\n" in stderr
    finally:
        serve.stop()
