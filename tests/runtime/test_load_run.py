"""Loading and running real models through LiteRT and ONNX Runtime, compared with Keras outputs."""

from __future__ import annotations

import edgeml_runtime as er
import numpy as np
import pytest

from tests.support.marks import model_params

# Float32 TFLite/ONNX against Keras on the same CPU: differences are float rounding of a 2-layer MLP,
# orders of magnitude below 1e-5 on outputs in [0, 1].
FLOAT_TOLERANCE = 1e-5


@model_params("mlp_fp32.tflite", "mlp_fp32.onnx")
def test_float_model_matches_keras(data_dir, reference, model_file):
    model = er.load(data_dir / model_file)
    (output,) = model.run(reference["mlp_inputs"]).values()
    np.testing.assert_allclose(output, reference["mlp_outputs"], atol=FLOAT_TOLERANCE)
    assert model.inputs[0].name == "features"
    assert model.inputs[0].shape == (None, 8)
    assert model.quantization is None


@model_params("two_io_fp32.tflite", "two_io_fp32.onnx")
def test_two_inputs_by_name_and_as_list(data_dir, reference, model_file):
    model = er.load(data_dir / model_file)
    feeds = {"image": reference["two_io_image"], "meta": reference["two_io_meta"]}
    by_name = model.run(feeds)
    outputs = sorted(by_name.values(), key=lambda array: array.shape[-1])
    np.testing.assert_allclose(outputs[0], reference["two_io_score"], atol=FLOAT_TOLERANCE)
    np.testing.assert_allclose(outputs[1], reference["two_io_logits"], atol=FLOAT_TOLERANCE)
    as_list = model.run([feeds[spec.name] for spec in model.inputs])  # positional = the file's input order
    for name in by_name:
        np.testing.assert_array_equal(as_list[name], by_name[name])


@model_params("mlp_int8.tflite")
def test_int8_float_io_equals_quantizing_by_hand(data_dir, reference, model_file):
    model = er.load(data_dir / model_file)
    x = reference["mlp_inputs"]
    (input_spec,), (output_spec,) = model.inputs, model.outputs
    assert input_spec.dtype == "int8" and input_spec.quantization is not None
    by_hand_in = np.clip(np.round(x / input_spec.quantization.scale) + input_spec.quantization.zero_point, -128, 127)
    raw_out = model.run(by_hand_in.astype(np.int8), raw=True)[output_spec.name]
    by_hand_out = (raw_out.astype(np.float32) - output_spec.quantization.zero_point) * output_spec.quantization.scale
    automatic = model.run(x)[output_spec.name]
    assert raw_out.dtype == np.int8
    assert automatic.dtype == np.float32
    np.testing.assert_array_equal(automatic, by_hand_out)
    # int8 against the float model: input step 0.024 and output step 1/256 on softmax outputs; a few
    # output steps of error is what full-integer quantization of this MLP costs.
    np.testing.assert_allclose(automatic, reference["mlp_outputs"], atol=6 / 256)


@model_params("mlp_fp32.tflite", "mlp_fp32.onnx")
def test_dynamic_batch_resizes_and_back(data_dir, reference, model_file):
    model = er.load(data_dir / model_file)
    x = reference["mlp_inputs"]
    (single,) = model.run(x[:1]).values()
    (batch,) = model.run(x).values()
    (single_again,) = model.run(x[:1]).values()
    assert batch.shape == (5, 4)
    np.testing.assert_allclose(batch[:1], single, atol=FLOAT_TOLERANCE)
    np.testing.assert_array_equal(single, single_again)


@model_params("mlp_fp32.tflite")
def test_threads_and_backend_are_reported(data_dir, model_file):
    model = er.load(data_dir / model_file, threads=1, backend="litert")
    assert model.threads == 1
    assert model.backend == "litert"
    assert model.backend_version[0].isdigit()


@model_params("mlp_fp32.tflite")
def test_backend_that_cannot_run_the_format_is_refused(data_dir, model_file):
    with pytest.raises(er.EdgeMLError, match="backend 'onnxruntime' cannot run tflite models"):
        er.load(data_dir / model_file, backend="onnxruntime")


def test_onnx_runtime_failure_is_a_model_run_error_and_the_session_keeps_working(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")  # to build the model; runtime-only venvs skip this test
    from onnx import TensorProto, helper

    # Reshape to (-1, 3) fails at run time for inputs whose size is not a multiple of 3; the shapes
    # themselves are dynamic, so edgeml's own feed checks let such inputs through to ONNX Runtime.
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 3])],
    )
    path = tmp_path / "reshape.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    model = er.load(path)
    with pytest.raises(er.ModelRunError) as failure:
        model.run(np.zeros((1, 4), np.float32))
    # One line: the operator and ONNX Runtime's reason, not its C++ source location.
    assert str(failure.value).startswith("ONNX Runtime failed to run the model at the Reshape node: ")
    assert "cannot be reshaped" in str(failure.value) and "{1,4}" in str(failure.value)
    assert "onnxruntime_src" not in str(failure.value) and "\n" not in str(failure.value)
    np.testing.assert_array_equal(model.run(np.ones((2, 3), np.float32))["y"], np.ones((2, 3), np.float32))
