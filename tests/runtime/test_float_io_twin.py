"""The float-I/O twin of a quantized .tflite model (edgeml_runtime/backends/float_io.py): Model.run feeds it the
app's float32 values and LiteRT quantizes and dequantizes inside the interpreter. What comes out must be what
the numpy path (quantization.Quantizer/Dequantizer, settled against LiteRT by the oracle test) gives, bit for
bit, on the values where rounding shows; a twin that would differ is never used; a model the twin builder
cannot read gets no twin and still runs."""

from __future__ import annotations

import edgeml_runtime as er
import numpy as np
import pytest
from edgeml_runtime.backends import float_io
from edgeml_runtime.backends.litert import LiteRTSession
from edgeml_runtime.fast_run import TWIN_AFTER_CALLS

from tests.runtime.test_quantized_io_fast import by_hand, hard_values
from tests.support.marks import model_params

pytest.importorskip("ai_edge_litert")  # tflite_runtime ships no flatbuffer schema module: no twins there


def rewritten(model_bytes: bytes, change) -> bytes:
    """The .tflite `model_bytes` with `change(model)` applied to its flatbuffer object tree."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    change(model)
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def twin_engaged(path):
    """The model loaded and run until Model.run's fast path has switched to the twin."""
    model = er.load(path, threads=1)
    for _ in range(TWIN_AFTER_CALLS):
        model.run(np.zeros(model.inputs[0].shape[1:], np.float32)[None])
    assert model._first_fast._float_run is not None
    return model


@model_params("mlp_int8.tflite")
def test_the_twin_takes_and_returns_float32_under_the_same_names(data_dir, model_file):
    """The twin's input and output are float32 without quantization, its signature keeps the model's names,
    and an input holding NaN or an infinity turns its output into NaN (the in-graph check)."""
    from ai_edge_litert.interpreter import Interpreter

    twin = Interpreter(model_content=float_io.float_io_model((data_dir / model_file).read_bytes()))
    twin.allocate_tensors()
    (twin_in,), (twin_out,) = twin.get_input_details(), twin.get_output_details()
    assert twin_in["dtype"] == np.float32 and twin_out["dtype"] == np.float32
    assert twin_in["quantization"] == (0.0, 0) and twin_out["quantization"] == (0.0, 0)
    model = er.load(data_dir / model_file)
    signature = twin.get_signature_list()
    assert [list(entry["inputs"]) for entry in signature.values()] == [[model.inputs[0].name]]
    assert [list(entry["outputs"]) for entry in signature.values()] == [[model.outputs[0].name]]
    x = np.linspace(-3, 5, 8, dtype=np.float32).reshape(1, 8)
    for bad in (None, np.nan, np.inf, -np.inf):
        if bad is not None:
            x[0, 4] = bad
        twin.set_tensor(twin_in["index"], x)
        twin.invoke()
        assert np.isnan(twin.get_tensor(twin_out["index"])).all() == (bad is not None)


@model_params("mlp_int8.tflite")
def test_model_run_through_the_twin_equals_the_numpy_path_bit_for_bit(data_dir, model_file, monkeypatch):
    """Halfway points of every step and their float32 neighbours, values far beyond the range, random
    values, one row and a batch: the twin and the numpy path (the same model with the twin turned off)
    agree exactly, and both agree with quantizing by hand and running the integers."""
    with_twin = twin_engaged(data_dir / model_file)
    monkeypatch.setattr(LiteRTSession, "float_io_twin", lambda self: None)
    numpy_path = er.load(data_dir / model_file, threads=1)
    (spec,), (out,) = with_twin.inputs, with_twin.outputs
    values = hard_values(spec.quantization, spec.dtype, np.random.default_rng(11))
    rows = values[: values.size // 8 * 8].reshape(-1, 1, 8)
    with np.errstate(over="ignore"):
        for row in rows:
            got = with_twin.run(row)[out.name]
            np.testing.assert_array_equal(got, numpy_path.run(row)[out.name])
            integers = with_twin.run(by_hand(row, spec.quantization, spec.dtype), raw=True)[out.name]
            np.testing.assert_array_equal(got, er.dequantize(integers, out.quantization))
        batch = rows[:32].reshape(32, 8)
        np.testing.assert_array_equal(with_twin.run(batch)[out.name], numpy_path.run(batch)[out.name])
        np.testing.assert_array_equal(with_twin.run(rows[0])[out.name], numpy_path.run(rows[0])[out.name])


@model_params("mlp_int8.tflite")
def test_non_finite_values_never_reach_the_twin(data_dir, model_file, monkeypatch):
    """NaN is refused as before; with allow_nonfinite it is quantized by edgeml's rule (the numpy path), not
    by whatever LiteRT's QUANTIZE kernel makes of NaN."""
    with_twin = twin_engaged(data_dir / model_file)
    monkeypatch.setattr(LiteRTSession, "float_io_twin", lambda self: None)
    numpy_path = er.load(data_dir / model_file, threads=1)
    x = np.linspace(-3, 3, 8, dtype=np.float32).reshape(1, 8)
    x[0, 2], x[0, 5] = np.nan, -np.inf
    with pytest.raises(er.InputError, match="non-finite"):
        with_twin.run(x)
    name = with_twin.outputs[0].name
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(with_twin.run(x, allow_nonfinite=True)[name],
                                      numpy_path.run(x, allow_nonfinite=True)[name])


@model_params("mlp_int8.tflite")
def test_a_twin_that_disagrees_on_the_probe_is_not_used(data_dir, model_file, monkeypatch):
    """A twin built from a model whose output scale is off by 1% fails the probe: the session offers none,
    and Model.run still gives the numpy path's results."""
    def scale_off(model):
        graph = model.subgraphs[0]
        quantization = graph.tensors[graph.outputs[0]].quantization
        quantization.scale = np.asarray(quantization.scale, np.float32) * np.float32(1.01)

    wrong_twin = float_io.float_io_model(rewritten((data_dir / model_file).read_bytes(), scale_off))
    monkeypatch.setattr(float_io, "float_io_model", lambda model_bytes: wrong_twin)
    model = er.load(data_dir / model_file, threads=1)
    assert model._first_session.float_io_twin() is None
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(1, 8)
    spec, out = model.inputs[0], model.outputs[0]
    integers = model.run(by_hand(x, spec.quantization, spec.dtype), raw=True)[out.name]
    np.testing.assert_array_equal(model.run(x)[out.name], er.dequantize(integers, out.quantization))


@pytest.mark.parametrize("content", [b"", b"TFL3" * 10, bytes(range(256)) * 4])
def test_bytes_the_builder_cannot_read_give_no_twin(content):
    assert float_io.float_io_model(content) is None


@model_params("mlp_fp32.tflite")
def test_a_float_model_has_nothing_to_replace(data_dir, model_file):
    assert float_io.float_io_model((data_dir / model_file).read_bytes()) is None


@model_params("mlp_int8.tflite")
def test_large_models_get_no_twin(data_dir, model_file, monkeypatch):
    """Above MAX_MODEL_BYTES a second interpreter would double the weights' memory for a gain that is small
    beside the model's own time."""
    monkeypatch.setattr(float_io, "MAX_MODEL_BYTES", 100)
    model = er.load(data_dir / model_file, threads=1)
    assert model._first_session.float_io_twin() is None
    assert model.run(np.zeros((1, 8), np.float32))[model.outputs[0].name].dtype == np.float32


@model_params("mlp_int8.tflite")
def test_the_twin_is_made_after_a_few_calls_not_at_load(data_dir, model_file):
    """A process that loads a model and runs it once or twice (`bench --runs 1`, a health check) does not pay
    for the twin; a loop gets it after TWIN_AFTER_CALLS float32 calls, with the same results before and after."""
    model = er.load(data_dir / model_file, threads=1)
    x = np.linspace(-3, 3, 8, dtype=np.float32).reshape(1, 8)
    name = model.outputs[0].name
    before = [model.run(x)[name] for _ in range(TWIN_AFTER_CALLS - 1)]
    assert model._first_fast._float_run is None
    after = [model.run(x)[name] for _ in range(3)]
    assert model._first_fast._float_run is not None
    for result in before + after:
        np.testing.assert_array_equal(result, before[0])


@model_params("mlp_int8.tflite")
def test_a_model_with_state_gets_no_twin(data_dir, model_file):
    """A variable tensor (an RNN's state) would live in each interpreter apart: switching to a twin would
    drop the state the original had built up."""
    def with_state(model):
        model.subgraphs[0].tensors[-1].isVariable = True

    original = (data_dir / model_file).read_bytes()
    assert float_io.float_io_model(original) is not None
    assert float_io.float_io_model(rewritten(original, with_state)) is None


@model_params("mlp_int8.tflite")
def test_a_twin_the_backend_cannot_run_is_not_used(data_dir, model_file, monkeypatch):
    """Making the twin happens in the middle of an app's loop: whatever goes wrong there means no twin, never
    an exception from Model.run."""
    def fails(session, twin):
        raise er.ModelRunError("the twin failed")

    monkeypatch.setattr(float_io, "agrees", fails)
    model = er.load(data_dir / model_file, threads=1)
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(1, 8)
    results = [model.run(x)[model.outputs[0].name] for _ in range(TWIN_AFTER_CALLS + 2)]
    assert model._first_fast._float_run is None
    for result in results:
        np.testing.assert_array_equal(result, results[0])
