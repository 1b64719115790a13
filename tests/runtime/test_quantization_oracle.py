"""The float API quantizes as the backends themselves do: a real oracle, not the code's own formula.

data/quantize_oracle.tflite and .onnx hold only the backends' QUANTIZE and DEQUANTIZE ops (ONNX:
QuantizeLinear / DequantizeLinear), for several scales, zero points and integer types (see make_models.py).
The values fed sit exactly halfway between two quantization steps, where rounding half to even and half
away from zero disagree, plus the steps themselves, their float neighbours and values far beyond the
integer range (saturation). `edgeml_runtime.quantization` must give the integers the backend's own op gives,
and Model.run with float inputs (the runtime quantizes them) must agree with the backend quantizing them.
"""

from __future__ import annotations

import importlib.util

import edgeml_runtime as er
import numpy as np
import pytest
from edgeml_runtime.quantization import dequantize, quantize
from edgeml_runtime.specs import Quantization

from tests.support.marks import model_params
from tests.support.models import DATA


def _parameters():
    spec = importlib.util.spec_from_file_location("edgeml_test_make_models", DATA / "make_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # numpy only at import; TensorFlow is imported by its functions
    return module.ORACLE_PARAMETERS, module.ORACLE_WIDTH


PARAMETERS, WIDTH = _parameters()


def probe_values(scale: float, zero_point: int, dtype) -> np.ndarray:
    """float32 values: every halfway point q + 0.5 of the integer range (a spread of them for int16) and
    a few beyond it, the steps themselves, the float32 neighbours of the halfway points, ±0, huge values."""
    info = np.iinfo(dtype)
    if info.max - info.min > 1024:
        steps = np.concatenate([np.arange(info.min - 3, info.min + 200), np.arange(-300, 300),
                                np.arange(info.max - 200, info.max + 3)])
    else:
        steps = np.arange(info.min - 3, info.max + 3)
    real_steps = (steps - zero_point).astype(np.float64)
    halfway = ((real_steps + 0.5) * np.float32(scale)).astype(np.float32)
    grid = (real_steps * np.float32(scale)).astype(np.float32)
    below, above = np.nextafter(halfway, np.float32(-np.inf)), np.nextafter(halfway, np.float32(np.inf))
    extremes = np.array([0.0, -0.0, 1e30, -1e30, 3.4e38, -3.4e38], np.float32)
    return np.concatenate([halfway, grid, below[::7], above[::7], extremes]).astype(np.float32)


def chunks(values: np.ndarray):
    """(1, WIDTH) rows covering `values` (the last one padded with zeros)."""
    padded = np.zeros(-(-len(values) // WIDTH) * WIDTH, np.float32)
    padded[:len(values)] = values
    return [row[None] for row in padded.reshape(-1, WIDTH)]


def test_the_probes_sit_where_the_rounding_rules_disagree():
    """Without such values the oracle could not notice half-to-even turned into half-away-from-zero."""
    for scale, zero_point, dtype in PARAMETERS.values():
        with np.errstate(over="ignore"):
            scaled = probe_values(scale, zero_point, dtype) / np.float32(scale)
        away = np.trunc(scaled + np.copysign(np.float32(0.5), scaled))
        assert np.sum(np.round(scaled) != away) > 100


def _feeds(model, key, real, integers):
    return {name: np.zeros((1, WIDTH), spec.dtype) for name, spec in
            ((spec.name, spec) for spec in model.inputs)} | {f"real_{key}": real, f"integers_{key}": integers}


def _backend_quantized(model, key, row, dtype) -> np.ndarray:
    return model.run(_feeds(model, key, row, np.zeros((1, WIDTH), dtype)), raw=True)[f"quantized_{key}"]


def _in_int32_range(values, scale) -> np.ndarray:
    """LiteRT's int16 QUANTIZE converts through int32 and wraps beyond it (1e30 -> -32768): a backend quirk the
    runtime does not copy (it saturates, see test_saturation_and_exact_steps), so those values are left out."""
    with np.errstate(over="ignore"):
        return np.abs(values.astype(np.float64) / scale) < 2.0**31


@model_params("quantize_oracle.tflite")
def test_quantize_gives_the_integers_litert_gives(data_dir, model_file):
    model = er.load(data_dir / model_file, threads=1)
    checked = 0
    for key, (scale, zero_point, dtype) in PARAMETERS.items():
        quantization = Quantization(float(np.float32(scale)), zero_point)
        values = probe_values(scale, zero_point, dtype)
        for row in chunks(values[_in_int32_range(values, scale)]):
            backend, ours = _backend_quantized(model, key, row, dtype), quantize(row, quantization, dtype)
            mismatch = np.flatnonzero(backend != ours)
            assert mismatch.size == 0, (
                f"{model_file} {key} (scale {scale}, zero point {zero_point}, {dtype}): the backend gives "
                f"{backend.ravel()[mismatch[:5]]} for {row.ravel()[mismatch[:5]]}, edgeml_runtime "
                f"{ours.ravel()[mismatch[:5]]}")
            # float64 arrays and lists (the public API takes any): computed in float32 all the same, as the
            # backend receives float32; float64 arithmetic would round near-halfway values differently.
            np.testing.assert_array_equal(quantize(row.astype(np.float64), quantization, dtype), backend)
            np.testing.assert_array_equal(quantize(row.tolist(), quantization, dtype), backend)
            checked += row.size
    assert checked >= 4 * 256


@model_params("quantize_oracle.onnx")
def test_onnx_runtime_rounds_half_to_even_too(data_dir, model_file):
    """ONNX Runtime divides by the scale where LiteRT multiplies by its reciprocal (values within a float32
    step of a halfway point can differ by one integer; the runtime never quantizes for ONNX Runtime, whose
    models carry no input quantization). On every value where the two agree, and that includes all the
    halfway points of these scales, its QuantizeLinear gives edgeml_runtime's integers."""
    model = er.load(data_dir / model_file, threads=1)
    names = {spec.name for spec in model.inputs}
    halfway_points = 0
    for key, (scale, zero_point, dtype) in PARAMETERS.items():
        if f"real_{key}" not in names:
            continue  # the .onnx file has no int16 pair (see make_models.py)
        quantization = Quantization(float(np.float32(scale)), zero_point)
        values = probe_values(scale, zero_point, dtype)
        with np.errstate(over="ignore", invalid="ignore"):  # ±1e30 and float32's max overflow, then saturate
            scaled = values / np.float32(scale)
            same = np.round(scaled) == np.round(values * (np.float32(1) / np.float32(scale)))
            halfway_points += int(np.sum(same & (np.abs(np.round(scaled) - scaled) == 0.5)))
            for row in chunks(values[same]):
                np.testing.assert_array_equal(_backend_quantized(model, key, row, dtype),
                                              quantize(row, quantization, dtype))
    assert halfway_points > 3 * 100


@model_params("quantize_oracle.tflite", "quantize_oracle.onnx")
def test_dequantize_gives_the_floats_the_backend_gives(data_dir, model_file):
    model = er.load(data_dir / model_file, threads=1)
    for key, (scale, zero_point, dtype) in PARAMETERS.items():
        if f"real_{key}" not in {spec.name for spec in model.inputs}:
            continue
        info = np.iinfo(dtype)
        codes = np.linspace(info.min, info.max, num=WIDTH * 2).round().astype(dtype)
        for row in codes.reshape(-1, WIDTH):
            row = row[None]
            backend = model.run(_feeds(model, key, np.zeros((1, WIDTH), np.float32), row), raw=True)
            np.testing.assert_array_equal(backend[f"dequantized_{key}"],
                                          dequantize(row, Quantization(float(np.float32(scale)), zero_point)))


@model_params("quantize_oracle.tflite")
def test_float_inputs_into_a_quantized_model_are_quantized_as_the_backend_quantizes(data_dir, model_file):
    """Model.run with floats for the integer inputs: edgeml_runtime quantizes them, the backend dequantizes
    them (dequantized_X); the same floats also go through the backend's QUANTIZE op (quantized_X, which
    the runtime dequantizes). The two agree only if both quantized to the same integers."""
    model = er.load(data_dir / model_file, threads=1)
    for key, (scale, zero_point, dtype) in PARAMETERS.items():
        spec = next(spec for spec in model.inputs if spec.name == f"integers_{key}")
        assert spec.quantization is not None and spec.dtype == dtype
        values = probe_values(scale, zero_point, dtype)
        for row in chunks(values[_in_int32_range(values, scale)]):
            feeds = _feeds(model, key, row, row)
            feeds = {name: value.astype(np.float32) for name, value in feeds.items()}
            outputs = model.run(feeds)
            assert outputs[f"quantized_{key}"].dtype == np.float32
            np.testing.assert_array_equal(outputs[f"dequantized_{key}"], outputs[f"quantized_{key}"])


@pytest.mark.parametrize("key", sorted(PARAMETERS))
def test_saturation_and_exact_steps(key):
    """Backend-independent facts the oracle relies on: beyond the range is the range's end, and a value on
    a step is that step."""
    scale, zero_point, dtype = PARAMETERS[key]
    info = np.iinfo(dtype)
    quantization = Quantization(float(np.float32(scale)), zero_point)
    values = np.array([1e30, -1e30, np.finfo(np.float32).max, -np.finfo(np.float32).max], np.float32)
    with np.errstate(over="ignore"):  # the huge values overflow to ±inf on the way, and then saturate
        saturated = quantize(values, quantization, dtype)
    np.testing.assert_array_equal(saturated, [info.max, info.min, info.max, info.min])
    steps = np.arange(info.min, info.max + 1, max(1, (info.max - info.min) // 4096)).astype(dtype)
    np.testing.assert_array_equal(quantize(dequantize(steps, quantization), quantization, dtype), steps)
