"""ONNX → SavedModel with onnx2tf in its own tool environment (`edgeml setup onnx2tf`), then our TFLite
exporter: the .tflite runs in edgeml_runtime and agrees with ONNX Runtime on the source, in the layouts the
route reports (`input_perms`/`output_perms`). Real onnx2tf, TensorFlow, ONNX Runtime and LiteRT; no mocks.

Tests that need the environment skip without it, and fail under CI (or EDGEML_REQUIRE_TOOLS): `make test` builds
it first (`make onnx2tf-env`).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from tests.support import onnx_graphs
from tests.support.marks import require_onnx2tf_env

pytestmark = pytest.mark.slow

# fp32 TFLite against ONNX Runtime fp32: the same float32 arithmetic, reordered (NHWC kernels, fused
# BatchNormalization); the outputs are probabilities in [0, 1], so 1e-4 absolute is about 1000 float32 ulps.
FP32_TOLERANCE = 1e-4
CHECKED_SAMPLES = 32


@pytest.fixture(scope="module")
def env_ready():
    require_onnx2tf_env()


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx-graphs")
    return {"cnn": onnx_graphs.nchw_cnn(folder / "cnn.onnx"), "mlp": onnx_graphs.mlp(folder / "mlp.onnx"),
            "two": onnx_graphs.two_input_symbolic_batch(folder / "two.onnx"),
            "scaler": onnx_graphs.unsupported_op(folder / "scaler.onnx")}


def convert(graph_path, work, **options):
    from edgeml_converters.onnx2tf_route import onnx_to_saved_model

    return onnx_to_saved_model(graph_path, work, **options)


def fp32_tflite(converted, destination):
    """Our exporter (this environment's TensorFlow) on onnx2tf's SavedModel (TensorFlow 2.19's)."""
    import edgeml_runtime
    from edgeml_converters.tflite_export import export_tflite

    export_tflite(converted.saved_model_dir, converted.signature_key, "fp32", destination)
    return edgeml_runtime.load(destination)


def onnxruntime_outputs(path, feeds):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def to_tflite_layout(arrays, perms, names):
    """ONNX-layout arrays by ONNX name -> the TFLite model's layout, by its (signature) names."""
    return {names[name]: (array.transpose(perms[name]) if perms[name] else array) for name, array in arrays.items()}


def worst_difference(model, converted, feeds, onnx_path):
    """Largest |TFLite - ONNX Runtime| over `feeds` (ONNX layout, one sample at a time: fixed-batch graphs)."""
    worst = 0.0
    count = len(next(iter(feeds.values())))
    for index in range(count):
        sample = {name: array[index:index + 1] for name, array in feeds.items()}
        expected = onnxruntime_outputs(onnx_path, sample)
        got = model.run(to_tflite_layout(sample, converted.input_perms, converted.signature_inputs))
        for name, reference in expected.items():
            perm = converted.output_perms[name]
            reference = reference.transpose(perm) if perm else reference
            worst = max(worst, float(np.max(np.abs(got[converted.signature_outputs[name]] - reference))))
    return worst


def first(arrays, count=CHECKED_SAMPLES):
    return {name: array[:count] for name, array in arrays.items()}


def test_nchw_cnn_becomes_nhwc_and_matches_onnxruntime(env_ready, graphs, tmp_path):
    graph = graphs["cnn"]
    converted = convert(graph.path, tmp_path)
    assert converted.input_perms == {"image": (0, 2, 3, 1)}
    assert converted.output_perms == {"probabilities": None}
    assert converted.signature_inputs == {"image": "image"}
    model = fp32_tflite(converted, tmp_path / "cnn.tflite")
    assert model.inputs[0].shape == (1, 8, 8, 1)  # NHWC: what TFLite kernels and image pipelines want
    assert worst_difference(model, converted, first(graph.test), graph.path) <= FP32_TOLERANCE


def test_keep_layout_keeps_nchw_inputs(env_ready, graphs, tmp_path):
    graph = graphs["cnn"]
    converted = convert(graph.path, tmp_path, keep_layout=True)
    assert converted.input_perms == {"image": None}
    model = fp32_tflite(converted, tmp_path / "cnn-nchw.tflite")
    assert model.inputs[0].shape == (1, 1, 8, 8)
    assert worst_difference(model, converted, first(graph.test), graph.path) <= FP32_TOLERANCE


def test_mlp_with_symbolic_batch(env_ready, graphs, tmp_path):
    graph = graphs["mlp"]
    converted = convert(graph.path, tmp_path)
    assert converted.input_perms == {"features": None} and converted.output_perms == {"probabilities": None}
    model = fp32_tflite(converted, tmp_path / "mlp.tflite")
    assert worst_difference(model, converted, first(graph.test), graph.path) <= FP32_TOLERANCE
    # The batch stayed symbolic: a batch of 16 runs in one call.
    batch = graph.test["features"][:16]
    got = model.run({"features": batch})["probabilities"]
    assert got.shape == (16, 10)
    np.testing.assert_allclose(got, onnxruntime_outputs(graph.path, {"features": batch})["probabilities"],
                               atol=FP32_TOLERANCE)


def test_two_inputs_each_in_its_own_layout(env_ready, graphs, tmp_path):
    graph = graphs["two"]
    converted = convert(graph.path, tmp_path)
    assert list(converted.input_perms) == ["image", "stats"]  # ONNX order
    assert converted.input_perms == {"image": (0, 2, 3, 1), "stats": None}
    model = fp32_tflite(converted, tmp_path / "two.tflite")
    assert worst_difference(model, converted, first(graph.test, 16), graph.path) <= FP32_TOLERANCE


def nchw_feature_map(path, input_name="x", output_name="y"):
    """x (1, 3, 8, 6) -> Conv 3x3 -> Relu -> y (1, 4, 8, 6): an NCHW output (a segmentation-style head), and
    RGB-shaped input (onnx2tf's own sample-image check: it must not reach the network)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(7).normal(0, 0.3, size=(4, 3, 3, 3)).astype("float32")
    nodes = [helper.make_node("Conv", [input_name, "w"], ["h"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["h"], [output_name], name="relu")]
    graph = helper.make_graph(nodes, "feature_map",
                              [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, 8, 6])],
                              [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, 4, 8, 6])],
                              [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", onnx_graphs.OPSET)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def test_nchw_output_is_reported_and_matches(env_ready, tmp_path):
    path = nchw_feature_map(tmp_path / "feature_map.onnx")
    converted = convert(path, tmp_path / "work")
    assert converted.input_perms == {"x": (0, 2, 3, 1)}
    assert converted.output_perms == {"y": (0, 2, 3, 1)}
    model = fp32_tflite(converted, tmp_path / "feature_map.tflite")
    assert model.outputs[0].shape == (1, 8, 6, 4)
    images = np.random.default_rng(0).random((8, 3, 8, 6), dtype=np.float32)
    # Conv outputs are not bounded like probabilities: relative to their size (about 1 here).
    assert worst_difference(model, converted, {"x": images}, path) <= FP32_TOLERANCE * 10


def test_names_a_signature_cannot_take_are_mapped(env_ready, tmp_path):
    """TensorFlow signature names allow no ':' (TF-exported ONNX graphs have "input:0"): the route maps them."""
    path = nchw_feature_map(tmp_path / "colons.onnx", input_name="input:0", output_name="output:0")
    converted = convert(path, tmp_path / "work")
    assert converted.signature_inputs == {"input:0": "input_0"}
    assert converted.signature_outputs == {"output:0": "output_0"}
    model = fp32_tflite(converted, tmp_path / "colons.tflite")
    images = np.random.default_rng(1).random((4, 3, 8, 6), dtype=np.float32)
    assert worst_difference(model, converted, {"input:0": images}, path) <= FP32_TOLERANCE * 10


def test_unsupported_operator_is_named(env_ready, graphs, tmp_path):
    from edgeml_converters.errors import OnnxConversionError

    with pytest.raises(OnnxConversionError) as caught:
        convert(graphs["scaler"].path, tmp_path)
    message = str(caught.value)
    assert "Scaler" in message and "\n" not in message, message
    assert caught.value.op == "Scaler" and caught.value.node


def test_the_source_file_is_untouched_and_the_work_dir_private(env_ready, graphs, tmp_path):
    """onnxsim (inside onnx2tf) rewrites the file it is given: the route gives it a copy, in a 0700 folder."""
    graph = graphs["mlp"]
    before = hashlib.sha256(graph.path.read_bytes()).hexdigest()
    converted = convert(graph.path, tmp_path)
    assert hashlib.sha256(graph.path.read_bytes()).hexdigest() == before
    work = converted.saved_model_dir.parent
    assert work.parent == tmp_path and (work.stat().st_mode & 0o077) == 0
    assert json.loads((work / "result.json").read_text())["versions"]["onnx2tf"]


def test_external_weights_outside_the_folder_are_refused(env_ready, tmp_path):
    from edgeml_converters.errors import OnnxConversionError

    graph = onnx_graphs.with_external_data(tmp_path / "model", location="../outside.bin")
    with pytest.raises(OnnxConversionError, match="outside the model's folder"):
        convert(graph.path, tmp_path / "work")


def test_external_weights_inside_the_folder_are_inlined(env_ready, tmp_path):
    graph = onnx_graphs.with_external_data(tmp_path / "model")
    converted = convert(graph.path, tmp_path / "work")
    model = fp32_tflite(converted, tmp_path / "external.tflite")
    assert worst_difference(model, converted, first(graph.test, 8), graph.path) <= FP32_TOLERANCE


# --- without the environment -------------------------------------------------------------------------------------


def test_missing_environment_names_the_setup_command(tmp_path, monkeypatch):
    from edgeml_converters.errors import ConversionError
    from edgeml_converters.onnx2tf_route import tool_env_problem

    monkeypatch.setenv("EDGEML_CACHE", str(tmp_path / "empty-cache"))
    problem = tool_env_problem()
    assert problem and "`edgeml setup onnx2tf`" in problem and "MB" in problem
    with pytest.raises(ConversionError, match="edgeml setup onnx2tf"):
        convert(onnx_graphs.mlp(tmp_path / "mlp.onnx").path, tmp_path / "work")


def test_an_unfinished_or_outdated_build_is_not_ready(tmp_path, monkeypatch):
    """The stamp is written last and names the requirements: without it, or for other ones, setup must run."""
    from edgeml_converters import onnx2tf_env

    monkeypatch.setenv("EDGEML_CACHE", str(tmp_path))
    env = onnx2tf_env.tool_env()
    env.bin_dir.mkdir(parents=True)
    env.python.symlink_to(__import__("sys").executable)  # a Python is there: an interrupted pip install
    assert onnx2tf_env.problem()
    env.stamp.write_text(json.dumps({"requirements": ["onnx2tf==1.0.0"], "versions": {}}))
    assert onnx2tf_env.problem()
    env.stamp.write_text(json.dumps({"requirements": list(onnx2tf_env.REQUIREMENTS), "versions": {}}))
    assert onnx2tf_env.problem() is None
