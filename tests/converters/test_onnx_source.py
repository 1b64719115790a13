"""ONNX models as conversion sources: graphs laid out as PyTorch exports them (tests/support/onnx_graphs.py) ->
ONNX fp16/dynamic/int8/.ort and TFLite, checked against the source run in ONNX Runtime (fp32).

Tolerances: fp32 artifacts reproduce the source up to float rounding (1e-4 of the output range, the default fp32
gate: TFLite's kernels accumulate in another order than ONNX Runtime's); int8 artifacts must pass the default int8
gate (cosine >= 0.98, decisive top-1 agreement >= 95 %) and keep the classifier's accuracy on the held-out digits
within 3 points (int8 rounding flips a few near-ties on 256 test images, each worth 0.4 pt).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support import onnx_graphs
from tests.support.cli import edgeml
from tests.support.marks import unavailable

pytestmark = pytest.mark.slow

INT8_ACCURACY_POINTS = 3.0


def _convert(graph, out: Path, formats=("onnx",), modes=("fp32", "int8"), **options) -> dict:
    from edgeml_converters import convert

    calibration = onnx_graphs.write_npz(graph, out.parent / f"{graph.path.stem}-calibration.npz")
    return convert(graph.path, out, formats=formats, modes=modes, calibration=calibration, isolate=False,
                   recommend=False, **options)


def _artifact(manifest: dict, kind: str, mode: str) -> dict:
    """The artifact of that file kind (its suffix: tflite, onnx, ort) and mode."""
    return next(a for a in manifest["artifacts"] if a["path"].endswith(f".{kind}") and a["quantization"] == mode)


def _run(path: Path, arrays: dict) -> np.ndarray:
    """The artifact's probabilities on `arrays` (by input name, in the artifact's own layout), one sample at a
    time when its batch is fixed."""
    import edgeml_runtime

    model = edgeml_runtime.load(path)
    step = model.inputs[0].shape[0] or len(next(iter(arrays.values())))
    total = len(next(iter(arrays.values())))
    parts = [model.run({name: value[start:start + step] for name, value in arrays.items()})
             for start in range(0, total, step)]
    name = model.outputs[0].name
    return np.concatenate([part[name] for part in parts])


def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float(np.mean(probabilities.argmax(axis=1) == labels))


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx-graphs")
    return {
        "cnn": onnx_graphs.nchw_cnn(root / "cnn" / "digits_cnn.onnx"),
        "mlp": onnx_graphs.mlp(root / "mlp" / "digits_mlp.onnx"),
        "two": onnx_graphs.two_input_symbolic_batch(root / "two" / "two_inputs.onnx"),
    }


@pytest.fixture(scope="module")
def onnx_cnn(graphs, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn") / "out"
    return _convert(graphs["cnn"], out, formats=("onnx", "ort"), modes=("fp32", "fp16", "dynamic", "int8")), out


# --- ONNX -> ONNX ------------------------------------------------------------------------------------------------


def test_nchw_cnn_to_onnx_int8_within_the_gate(graphs, onnx_cnn):
    manifest, out = onnx_cnn
    graph = graphs["cnn"]
    assert manifest["source"]["kind"] == "onnx"
    assert manifest["source"]["loader"].startswith("onnx ")
    int8 = _artifact(manifest, "onnx", "int8")
    assert int8["validation"]["passed"], int8["validation"]
    assert int8["layout"] == {"inputs": {"image": "NCHW"}}
    assert int8["inputs"][0]["shape"] == [1, 1, 8, 8]  # PyTorch's fixed batch is kept
    # The source's accuracy on held-out digits survives int8.
    source = _accuracy(_run(out / _artifact(manifest, "onnx", "fp32")["path"], graph.test), graph.labels)
    quantized = _accuracy(_run(out / int8["path"], graph.test), graph.labels)
    assert source > 90.0
    assert source - quantized <= INT8_ACCURACY_POINTS


def test_every_onnx_mode_and_ort_pass(onnx_cnn):
    manifest, out = onnx_cnn
    made = {(a["path"].rsplit(".", 1)[1], a["quantization"]) for a in manifest["artifacts"]}
    assert made == {(fmt, mode) for fmt in ("onnx", "ort") for mode in ("fp32", "fp16", "dynamic", "int8")}
    assert all(a["validation"]["passed"] for a in manifest["artifacts"]), [
        (a["path"], a["validation"]) for a in manifest["artifacts"] if not a["validation"]["passed"]]
    fp32 = _artifact(manifest, "onnx", "fp32")
    assert fp32["validation"]["max_abs_diff"] <= 1e-6  # the checked source itself
    assert fp32["opset"] == onnx_graphs.OPSET


def test_mlp_to_onnx_int8(graphs, tmp_path):
    graph = graphs["mlp"]
    manifest = _convert(graph, tmp_path / "out")
    int8 = _artifact(manifest, "onnx", "int8")
    assert int8["validation"]["passed"], int8["validation"]
    assert "layout" not in int8  # no image-like input: nothing to say
    source = _accuracy(_run(tmp_path / "out" / _artifact(manifest, "onnx", "fp32")["path"], graph.test), graph.labels)
    quantized = _accuracy(_run(tmp_path / "out" / int8["path"], graph.test), graph.labels)
    assert source - quantized <= INT8_ACCURACY_POINTS


def test_symbolic_batch_and_two_inputs_calibrated_by_name(graphs, tmp_path):
    graph = graphs["two"]
    manifest = _convert(graph, tmp_path / "out", modes=("fp32", "int8"))
    int8 = _artifact(manifest, "onnx", "int8")
    assert int8["validation"]["passed"], int8["validation"]
    assert [spec["shape"] for spec in int8["inputs"]] == [[None, 1, 8, 8], [None, 8]]
    assert manifest["calibration"]["samples"] == 300  # of the .npz's 400; the rest validated on
    assert int8["validation"]["samples"] == 100
    # The symbolic batch stays symbolic: any batch size runs.
    import edgeml_runtime

    model = edgeml_runtime.load(tmp_path / "out" / int8["path"])
    seven = model.run({name: value[:7] for name, value in graph.test.items()})
    assert seven["probabilities"].shape == (7, 10)


def test_an_image_folder_calibrates_an_nchw_model(graphs, tmp_path):
    from PIL import Image

    graph = graphs["cnn"]
    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(graph.calibration["image"][:120]):
        Image.fromarray(np.round(image[0] * 255).astype("uint8"), mode="L").save(folder / f"{index:03d}.png")
    out = tmp_path / "out"
    edgeml("convert", graph.path, "--to", "onnx", "--int8", "--calibration", folder, "--input-range", "0,1", "-o", out,
           "--no-recommend", check_exit=0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "pixels / 255" in manifest["calibration"]["preprocessing"]["image"]
    int8 = _artifact(manifest, "onnx", "int8")
    assert int8["validation"]["passed"], int8["validation"]


def test_external_data_inside_the_folder_is_read_and_inlined(tmp_path):
    graph = onnx_graphs.with_external_data(tmp_path / "model")
    manifest = _convert(graph, tmp_path / "out", modes=("fp32",))
    fp32 = _artifact(manifest, "onnx", "fp32")
    assert fp32["validation"]["passed"]
    # The artifact holds its weights: it runs copied alone to another folder.
    alone = tmp_path / "elsewhere" / "model.onnx"
    alone.parent.mkdir()
    shutil.copyfile(tmp_path / "out" / fp32["path"], alone)
    source = _run(graph.path, graph.test)
    np.testing.assert_allclose(_run(alone, graph.test), source, atol=1e-6)


def test_already_quantized_source_is_copied_not_quantized_again(onnx_cnn, tmp_path):
    import onnx

    manifest, out = onnx_cnn
    quantized = tmp_path / "cnn_int8.onnx"
    shutil.copyfile(out / _artifact(manifest, "onnx", "int8")["path"], quantized)
    calibration = tmp_path / "calibration.npz"
    np.savez(calibration, image=np.zeros((4, 1, 8, 8), "float32"))
    from edgeml_converters import convert

    again = convert(quantized, tmp_path / "out", formats=("onnx",), modes=("fp32", "int8"), calibration=calibration,
                    isolate=False, recommend=False)
    assert [(a["quantization"], a.get("source_quantized")) for a in again["artifacts"]] == [("int8", "int8")]
    copied = onnx.load(str(tmp_path / "out" / again["artifacts"][0]["path"]))
    count = sum(node.op_type == "QuantizeLinear" for node in copied.graph.node)
    assert count == sum(node.op_type == "QuantizeLinear" for node in onnx.load(str(quantized)).graph.node)


def test_a_bundle_and_the_predictor_take_the_results(graphs, onnx_cnn, tmp_path):
    import tarfile

    from edgeml_runtime import Predictor

    from tests.support.cli import invoke

    _, out = onnx_cnn
    bundle = tmp_path / "b.tar.gz"
    invoke("bundle", out, "--device", "rpi4", "--no-wheels", "--artifact", "digits_cnn.int8.onnx", "-o", bundle,
           check_exit=0)
    with tarfile.open(bundle) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    assert "models/digits_cnn.int8.onnx" in names and "models/manifest.json" in names
    predictor = Predictor.from_manifest(out, artifact="digits_cnn.int8.onnx")
    graph = graphs["cnn"]
    predicted = [int(np.argmax(predictor.predict(image).output)) for image in graph.test["image"][:20]]
    assert np.mean(np.array(predicted) == graph.labels[:20]) >= 0.8


# --- bad sources: one line, exit 2, nothing written -----------------------------------------------------------------


def _refused(source: Path, tmp_path: Path, *words: str) -> None:
    out = tmp_path / "out"
    done = edgeml("convert", source, "--to", "onnx", "-o", out, check_exit=2)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists()


def test_external_data_outside_the_folder_is_refused(tmp_path):
    graph = onnx_graphs.with_external_data(tmp_path / "model", location="../outside.bin")
    assert graph.extra["data"].resolve() == (tmp_path / "outside.bin").resolve()
    _refused(graph.path, tmp_path, "outside the model's folder", "../outside.bin")


def test_external_data_linked_outside_the_folder_is_refused(tmp_path):
    graph = onnx_graphs.with_external_data(tmp_path / "model")
    secret = tmp_path / "secret.bin"
    shutil.move(graph.extra["data"], secret)
    graph.extra["data"].symlink_to(secret)
    _refused(graph.path, tmp_path, "links outside the model's folder")


def test_corrupt_onnx_file(tmp_path):
    _refused(onnx_graphs.corrupt(tmp_path / "broken.onnx"), tmp_path, "broken.onnx", "not a valid ONNX model")


def test_operator_nobody_implements(tmp_path):
    graph = onnx_graphs.unknown_op(tmp_path / "custom.onnx")
    _refused(graph.path, tmp_path, "FancyActivation", "com.example.custom")


# --- ONNX -> TFLite (onnx2tf in its own environment, `edgeml setup onnx2tf`) ---------------------------------------


def test_without_the_onnx2tf_environment_the_onnx_artifacts_are_written(graphs, tmp_path):
    import os

    out = tmp_path / "out"
    empty_cache = {**os.environ, "EDGEML_CACHE": str(tmp_path / "cache")}  # no tool environment in it
    done = edgeml("convert", graphs["mlp"].path, "--to", "tflite,onnx", "-o", out, "--no-recommend", env=empty_cache,
                  check_exit=2)
    assert "edgeml setup onnx2tf" in done.stderr and "Traceback" not in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [a["path"] for a in manifest["artifacts"]] == ["digits_mlp.fp32.onnx"]
    assert manifest["artifacts"][0]["validation"]["passed"]


@pytest.fixture(scope="module")
def onnx2tf_ready():
    from edgeml_converters import onnx2tf_route

    problem = onnx2tf_route.tool_env_problem()
    if problem:
        unavailable(problem)


@pytest.fixture(scope="module")
def tflite_cnn(graphs, onnx2tf_ready, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn-tflite") / "out"
    return _convert(graphs["cnn"], out, formats=("tflite", "onnx"), modes=("fp32", "int8")), out


def test_nchw_cnn_to_tflite_fp32_matches_the_source(graphs, tflite_cnn):
    manifest, out = tflite_cnn
    graph = graphs["cnn"]
    fp32 = _artifact(manifest, "tflite", "fp32")
    assert fp32["validation"]["passed"], fp32["validation"]
    assert fp32["validation"]["relative_max_abs_diff"] <= 1e-4
    assert fp32["layout"]["inputs"] == {fp32["inputs"][0]["name"]: "NHWC"}
    assert fp32["layout"]["source"] == {"image": "NCHW"}
    assert fp32["inputs"][0]["shape"] == [1, 8, 8, 1]
    # Checked here too, on the test images: NHWC into the .tflite, NCHW into the source.
    name = fp32["inputs"][0]["name"]
    tflite = _run(out / fp32["path"], {name: graph.test["image"].transpose(0, 2, 3, 1)})
    source = _run(graph.path, graph.test)
    assert np.max(np.abs(tflite - source)) <= 1e-4 * float(np.ptp(source))


def test_nchw_cnn_to_tflite_int8_within_the_gate(graphs, tflite_cnn):
    manifest, out = tflite_cnn
    graph = graphs["cnn"]
    int8 = _artifact(manifest, "tflite", "int8")
    assert int8["validation"]["passed"], int8["validation"]
    name = int8["inputs"][0]["name"]
    quantized = _accuracy(_run(out / int8["path"], {name: graph.test["image"].transpose(0, 2, 3, 1)}), graph.labels)
    assert _accuracy(_run(graph.path, graph.test), graph.labels) - quantized <= INT8_ACCURACY_POINTS


def test_mlp_to_tflite(graphs, onnx2tf_ready, tmp_path):
    manifest = _convert(graphs["mlp"], tmp_path / "out", formats=("tflite",), modes=("fp32", "int8"))
    fp32, int8 = _artifact(manifest, "tflite", "fp32"), _artifact(manifest, "tflite", "int8")
    assert fp32["validation"]["relative_max_abs_diff"] <= 1e-4
    assert int8["validation"]["passed"], int8["validation"]
    assert "layout" not in fp32
    assert fp32["converted_with"]["onnx2tf"] and fp32["converted_with"]["tensorflow"]


def test_two_inputs_and_a_symbolic_batch_to_tflite(graphs, onnx2tf_ready, tmp_path):
    graph = graphs["two"]
    manifest = _convert(graph, tmp_path / "out", formats=("tflite",), modes=("fp32", "int8"))
    fp32, int8 = _artifact(manifest, "tflite", "fp32"), _artifact(manifest, "tflite", "int8")
    assert fp32["validation"]["relative_max_abs_diff"] <= 1e-4
    assert int8["validation"]["passed"], int8["validation"]
    shapes = {spec["name"]: spec["shape"] for spec in fp32["inputs"]}
    image = next(name for name, spelled in fp32["layout"]["inputs"].items() if spelled == "NHWC")
    assert shapes[image] == [None, 8, 8, 1] and sorted(map(str, shapes.values())) == ["[None, 8, 8, 1]", "[None, 8]"]
    # Any batch runs, each input in its own layout.
    import edgeml_runtime

    stats = next(name for name in shapes if name != image)
    model = edgeml_runtime.load(tmp_path / "out" / fp32["path"])
    out = model.run({image: graph.test["image"][:5].transpose(0, 2, 3, 1), stats: graph.test["stats"][:5]})
    source = _run(graph.path, {name: value[:5] for name, value in graph.test.items()})
    np.testing.assert_allclose(next(iter(out.values())), source, atol=1e-4 * float(np.ptp(source)))


def test_keep_layout_takes_nchw(graphs, onnx2tf_ready, tmp_path):
    manifest = _convert(graphs["cnn"], tmp_path / "out", formats=("tflite",), modes=("fp32",), keep_layout=True)
    fp32 = _artifact(manifest, "tflite", "fp32")
    assert fp32["validation"]["passed"], fp32["validation"]
    assert fp32["inputs"][0]["shape"] == [1, 1, 8, 8]
    assert fp32["layout"]["inputs"] == {fp32["inputs"][0]["name"]: "NCHW"}


def test_operator_the_tflite_route_cannot_convert(onnx2tf_ready, tmp_path):
    graph = onnx_graphs.unsupported_op(tmp_path / "scaled.onnx")
    out = tmp_path / "out"
    calibration = onnx_graphs.write_npz(graph, tmp_path / "calibration.npz")
    done = edgeml("convert", graph.path, "--int8", "--calibration", calibration, "-o", out, "--no-recommend",
                  check_exit=2)
    assert graph.unsupported in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert {a["format"] for a in manifest["artifacts"]} == {"onnx"}  # the ONNX artifacts are still written
    assert all(a["validation"]["passed"] for a in manifest["artifacts"])


def test_old_opset_source_is_moved_up_for_int8(graphs, tmp_path):
    import onnx

    old = onnx.load(str(graphs["mlp"].path))
    old.opset_import[0].version = 11  # Gemm, Relu and Softmax (2-D) mean the same at opset 11
    onnx.save(old, str(tmp_path / "old.onnx"))
    graph = onnx_graphs.OnnxGraph(tmp_path / "old.onnx", graphs["mlp"].inputs, graphs["mlp"].calibration,
                                  graphs["mlp"].test, graphs["mlp"].labels)
    manifest = _convert(graph, tmp_path / "out")
    assert [(a["opset"], a["validation"]["passed"]) for a in manifest["artifacts"]] == [(13, True), (13, True)]


def test_explain_and_max_drop_on_an_onnx_source(graphs, tmp_path):
    graph = graphs["cnn"]
    evaluation = tmp_path / "eval.npz"
    np.savez(evaluation, image=graph.test["image"], y=graph.labels)
    manifest = _convert(graph, tmp_path / "out", explain=True, max_drop=1.0, eval_data=evaluation)
    int8 = _artifact(manifest, "onnx", "int8")
    assert int8["validation"]["passed"], int8["validation"]
    assert int8["validation"]["eval"]["metric"] == "accuracy"
    assert int8["validation"]["eval"]["drop_points"] <= 1.0
    assert int8["validation"]["layers"], "--explain ranks the ONNX graph's layers"
