"""Input checking happens before the backend sees the data, with one message naming the problem."""

from __future__ import annotations

import edgeml_runtime as er
import numpy as np
import pytest

from tests.support.marks import model_params
from tests.support.models import backend_installed


@pytest.fixture(params=["mlp_fp32.tflite", "mlp_fp32.onnx"])
def mlp(request, data_dir):
    if not backend_installed(request.param):
        pytest.skip("backend not installed")
    return er.load(data_dir / request.param)


def test_wrong_width_names_input_expected_and_given(mlp):
    with pytest.raises(er.InputError) as caught:
        mlp.run(np.zeros((1, 7), np.float32))
    message = str(caught.value)
    assert "input 'features'" in message
    assert "(None, 8) float32" in message
    assert "(1, 7) float32" in message
    assert "dimension 1 must be 8" in message


def test_missing_batch_dimension_suggests_the_fix(mlp):
    with pytest.raises(er.InputError, match=r"expected 2 dimensions .*add a batch dimension"):
        mlp.run(np.zeros(8, np.float32))


def test_unknown_and_missing_names(mlp):
    expected = r"unknown input name\(s\) \['pixels'\]; the model's inputs are \['features'\]"
    with pytest.raises(er.InputError, match=expected):
        mlp.run({"pixels": np.zeros((1, 8), np.float32)})
    with pytest.raises(er.InputError, match="got 2 arrays, but the model has 1 inputs"):
        mlp.run([np.zeros((1, 8), np.float32)] * 2)


# 2 rows (16 values) take the plain-Python checks, 20 rows (160 values) numpy's; float64 is also cast.
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [2, 20])
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_refused_unless_allowed(mlp, rows, bad_value, dtype):
    x = np.zeros((rows, 8), dtype)
    x[1, 3] = bad_value
    with pytest.raises(er.InputError, match=r"input 'features': 1 non-finite value\(s\)"):
        mlp.run(x)
    (output,) = mlp.run(x, allow_nonfinite=True).values()
    assert output.shape == (rows, 4)


def test_safe_casts_are_allowed_and_give_the_same_result(mlp):
    x32 = np.arange(16, dtype=np.float32).reshape(2, 8) / 16
    (expected,) = mlp.run(x32).values()
    (from_float64,) = mlp.run(x32.astype(np.float64)).values()  # rounding only
    (from_fortran_order,) = mlp.run(np.asfortranarray(x32.astype(np.float64))).values()
    np.testing.assert_array_equal(from_fortran_order, expected)
    (from_list,) = mlp.run(x32.tolist()).values()
    (from_ints,) = mlp.run(np.arange(16, dtype=np.int64).reshape(2, 8)).values()  # exact in float32
    np.testing.assert_array_equal(from_float64, expected)
    np.testing.assert_array_equal(from_list, expected)
    (expected_ints,) = mlp.run(np.arange(16, dtype=np.float32).reshape(2, 8)).values()
    np.testing.assert_array_equal(from_ints, expected_ints)


def test_lossy_casts_are_refused(mlp):
    with pytest.raises(er.InputError, match="values do not fit float32 without loss"):
        mlp.run(np.full((1, 8), 2**53 + 1, dtype=np.int64))
    with pytest.raises(er.InputError, match="overflow float32"):
        mlp.run(np.full((1, 8), 1e300, dtype=np.float64))
    with pytest.raises(er.InputError, match="overflow float32"):  # finite values whose sum overflows
        mlp.run(np.full((1, 8), 1e308, dtype=np.float64))
    with pytest.raises(er.InputError, match="expected numbers"):
        mlp.run(np.array([["a"] * 8]))


@model_params("mlp_int8.tflite")
def test_raw_int8_input_refuses_floats_and_out_of_range_ints(data_dir, model_file):
    model = er.load(data_dir / model_file)
    with pytest.raises(er.InputError, match="cannot cast float32 to int8 without loss"):
        model.run(np.zeros((1, 8), np.float32), raw=True)
    with pytest.raises(er.InputError, match="values do not fit int8"):
        model.run(np.full((1, 8), 300, np.int32), raw=True)
    raw = model.run(np.full((1, 8), 3, np.int32), raw=True)  # in range: cast is exact
    assert next(iter(raw.values())).dtype == np.int8


@model_params("mlp_int8.tflite")
def test_float_input_saturates_like_tflite(data_dir, model_file):
    model = er.load(data_dir / model_file)
    spec = model.inputs[0]
    huge = np.full((1, 8), 1e6, np.float32)
    quantized = er.quantize(huge, spec.quantization, spec.dtype)
    assert (quantized == 127).all()
    saturated = model.run(np.full((1, 8), 127, np.int8), raw=True)["output_0"]
    expected = er.dequantize(saturated, model.outputs[0].quantization)
    np.testing.assert_array_equal(model.run(huge)["output_0"], expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("size", [8, 64, 5000])
def test_finiteness_check_is_exact_even_where_the_dot_product_overflows(dtype, size):
    """all_finite() sums x·x; values whose squares overflow (1e30 in float32, 300 in float16) are still finite, and
    one NaN or infinity anywhere is found, in small and large arrays."""
    from edgeml_runtime.feeds import all_finite

    finite_but_huge = np.full(size, np.finfo(dtype).max / 2, dtype)
    assert all_finite(finite_but_huge)
    assert all_finite(np.linspace(-1, 1, size).astype(dtype))
    for bad in (np.nan, np.inf, -np.inf):
        values = finite_but_huge.copy()
        values[size // 3] = bad
        assert not all_finite(values)
        values = np.zeros(size, dtype)
        values[-1] = bad
        assert not all_finite(values.reshape(1, -1))
