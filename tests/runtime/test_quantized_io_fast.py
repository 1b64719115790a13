"""Model.run's fast path for quantized I/O (edgeml_runtime.fast_run, quantization.Quantizer/Dequantizer) gives
what the documented rules give, computed by hand with plain numpy, bit for bit; and what it returns is the
caller's to keep: a later call, on this thread or another, never changes it.

The rules themselves (round half to even, multiply by the float32 reciprocal, saturate) are settled against
LiteRT by test_quantization_oracle.py; here the fast implementation (a rounding trick on float32 and a
view of its low bytes, buffers reused from call to call) is checked against the plain formula, on random
values and on the values where a wrong rounding shows: exact halfway points, their float32 neighbours,
and values beyond the range."""

from __future__ import annotations

import threading

import edgeml_runtime as er
import numpy as np
import pytest
from edgeml_runtime.quantization import Dequantizer, Quantizer, dequantize, quantize
from edgeml_runtime.specs import Quantization

from tests.support.marks import model_params

DTYPES = ("int8", "uint8", "int16")


def by_hand(values, quantization: Quantization, dtype) -> np.ndarray:
    """The documented rule in plain numpy: clip(rint(float32(x) * float32(1 / scale)) + zp, min, max)."""
    info = np.iinfo(dtype)
    reciprocal = np.float32(1.0) / np.float32(quantization.scale)
    with np.errstate(over="ignore"):
        scaled = np.rint(np.asarray(values).astype(np.float32) * reciprocal)
    return np.clip(scaled + np.float32(quantization.zero_point), info.min, info.max).astype(dtype)


def hard_values(quantization: Quantization, dtype, rng) -> np.ndarray:
    """Halfway points of every step (a spread for int16), their float32 neighbours, the steps, values beyond
    both ends, ±0 and huge values, and random values across and around the range; float32."""
    info = np.iinfo(dtype)
    steps = np.arange(info.min - 3, info.max + 4) if info.max < 1000 else np.concatenate(
        [np.arange(info.min - 3, info.min + 300), np.arange(-300, 300), np.arange(info.max - 300, info.max + 4)])
    scale = np.float32(quantization.scale)
    real = (steps - quantization.zero_point).astype(np.float64)
    halfway = ((real + 0.5) * scale).astype(np.float32)
    below, above = np.nextafter(halfway, np.float32(-np.inf)), np.nextafter(halfway, np.float32(np.inf))
    low, high = (info.min - quantization.zero_point) * scale, (info.max - quantization.zero_point) * scale
    spread = rng.uniform(low - 10 * scale, high + 10 * scale, size=2000)
    huge = np.array([0.0, -0.0, 1e30, -1e30, 3.4e38, -3.4e38, 1e-40, -1e-40], np.float32)
    return np.concatenate([halfway, below, above, (real * scale).astype(np.float32), spread.astype(np.float32),
                           huge]).astype(np.float32)


def quantizations(rng, count=12):
    """(Quantization, dtype): scales from 2^-12 to 4 (powers of two and not), zero points even and odd."""
    for index in range(count):
        dtype = DTYPES[index % len(DTYPES)]
        info = np.iinfo(dtype)
        scale = float(np.float32(2.0 ** rng.uniform(-12, 2)))
        zero_point = int(rng.integers(info.min, info.max + 1)) if index % 4 else (0 if dtype != "uint8" else 128)
        if index % 2:  # odd and even zero points take different steps in Quantizer
            zero_point = zero_point - 1 if zero_point % 2 == 0 else zero_point
        yield Quantization(scale, zero_point), dtype
    yield Quantization(0.1, 7), "int8"  # a scale whose reciprocal is not exact: x * r and x / s differ
    yield Quantization(float(np.float32(1 / 255)), -128), "int8"  # images in [0, 1]


def test_the_quantizer_equals_the_rule_by_hand_on_hard_and_random_values():
    rng = np.random.default_rng(17)
    checked = 0
    for quantization, dtype in quantizations(rng):
        quantizer = Quantizer(quantization, dtype)
        values = hard_values(quantization, dtype, rng)
        expected = by_hand(values, quantization, dtype)
        with np.errstate(over="ignore"):  # ±3.4e38 x 1/scale overflows to ±inf on the way, then saturates
            for shape in ((values.size,), (1, values.size), (values.size // 8, 8) if values.size % 8 == 0 else (1, -1)):
                shaped = values.reshape(shape)
                np.testing.assert_array_equal(quantizer(shaped), expected.reshape(shaped.shape),
                                              err_msg=f"{quantization} {dtype} {shape}")
            np.testing.assert_array_equal(quantizer(values.astype(np.float64)), expected)  # cast first, as LiteRT
            np.testing.assert_array_equal(quantize(values, quantization, dtype), expected)
        checked += values.size
    assert checked > 50_000


def test_quantize_returns_a_contiguous_array_of_its_own():
    quantization = Quantization(0.05, 3)
    values = np.linspace(-5, 5, 24, dtype=np.float32).reshape(2, 3, 4)
    first = quantize(values, quantization, "int8")
    kept = first.copy()
    quantize(-values, quantization, "int8")
    assert first.flags.c_contiguous and first.flags.owndata and first.dtype == np.int8
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_dequantizer_equals_dequantize_on_every_code(dtype):
    info = np.iinfo(dtype)
    codes = np.arange(info.min, info.max + 1).astype(dtype)
    for quantization in (Quantization(0.00390625, int(info.min)), Quantization(0.0627, 5 if info.min < 0 else 128)):
        dequantizer = Dequantizer(quantization, dtype)
        result = dequantizer(codes)
        assert result.dtype == np.float32
        np.testing.assert_array_equal(result, dequantize(codes, quantization))
        np.testing.assert_array_equal(dequantizer(codes.reshape(1, -1)), dequantize(codes, quantization)[None])


@model_params("mlp_int8.tflite")
def test_model_run_on_floats_equals_quantizing_and_dequantizing_by_hand(data_dir, model_file):
    """The int8 MLP (input zero point 5, odd; output -128): floats through Model.run, call after call (the
    fast path from the second call on), give what the rule by hand, raw integers and dequantize give."""
    model = er.load(data_dir / model_file, threads=1)
    (spec,), (out,) = model.inputs, model.outputs
    rng = np.random.default_rng(3)
    values = hard_values(spec.quantization, spec.dtype, rng)
    rows = values[: values.size // 8 * 8].reshape(-1, 1, 8)
    with np.errstate(over="ignore"):
        for row in rows[::3]:
            got = model.run(row)[out.name]
            raw = model.run(by_hand(row, spec.quantization, spec.dtype), raw=True)[out.name]
            np.testing.assert_array_equal(got, dequantize(raw, out.quantization))
        batch = rows[:64].reshape(64, 8)  # another shape: the fast path re-checks it, the interpreter resizes
        raw = model.run(by_hand(batch, spec.quantization, spec.dtype), raw=True)[out.name]
        np.testing.assert_array_equal(model.run(batch)[out.name], dequantize(raw, out.quantization))
        np.testing.assert_array_equal(model.run(batch.astype(np.float64))[out.name], dequantize(raw, out.quantization))


@model_params("mlp_int8.tflite", "mlp_fp32.tflite", "mlp_fp32.onnx")
def test_results_are_not_changed_by_later_calls(data_dir, model_file):
    """A caller keeping a result across calls must not see it change: outputs are new arrays every call, and
    the input the caller passed is never written to."""
    model = er.load(data_dir / model_file, threads=1)
    rng = np.random.default_rng(5)
    first_input = rng.normal(size=(1, 8)).astype(np.float32)
    input_copy = first_input.copy()
    first = model.run(first_input)
    kept = {name: value.copy() for name, value in first.items()}
    for _ in range(3):
        later = model.run(rng.normal(size=(1, 8)).astype(np.float32) * 3)
        for name, value in later.items():
            assert not np.shares_memory(value, first[name])
    for name, value in first.items():
        np.testing.assert_array_equal(value, kept[name])
    np.testing.assert_array_equal(first_input, input_copy)
    if model.quantization:
        raw_first = model.run(np.full((1, 8), 3, np.int8), raw=True)
        raw_kept = {name: value.copy() for name, value in raw_first.items()}
        model.run(np.full((1, 8), -90, np.int8), raw=True)
        for name, value in raw_first.items():
            np.testing.assert_array_equal(value, raw_kept[name])


@model_params("mlp_int8.tflite", "mlp_fp32.tflite", "mlp_fp32.onnx")
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused_after_the_fast_path_has_seen_the_shape(data_dir, model_file, bad):
    model = er.load(data_dir / model_file, threads=1)
    good = np.ones((1, 8), np.float32)
    model.run(good)
    model.run(good)
    x = good.copy()
    x[0, 3] = bad
    with pytest.raises(er.InputError, match="non-finite"):
        model.run(x)
    with np.errstate(invalid="ignore"):
        assert set(model.run(x, allow_nonfinite=True)) == {spec.name for spec in model.outputs}
    with pytest.raises(er.InputError, match="shape"):
        model.run(np.ones((1, 9), np.float32))


@model_params("mlp_int8.tflite")
def test_threads_each_use_their_own_buffers(data_dir, model_file):
    """Several threads running the same Model at once get what one thread alone gets, sample by sample."""
    model = er.load(data_dir / model_file, threads=1)
    rng = np.random.default_rng(11)
    samples = [rng.normal(size=(1, 8)).astype(np.float32) * 2 for _ in range(64)]
    expected = [model.run(sample)["output_0"] for sample in samples]
    failures = []

    def worker(offset):
        for step in range(200):
            index = (offset + step) % len(samples)
            if not np.array_equal(model.run(samples[index])["output_0"], expected[index]):
                failures.append(index)

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_numpys_without_a_clip_ufunc_quantize_alike(monkeypatch):
    """Where numpy has no clip ufunc at the place it is looked for, maximum then minimum do the clipping."""
    from edgeml_runtime import quantization

    monkeypatch.setattr(quantization, "_clip", quantization._clip_by_extremes)
    rng = np.random.default_rng(23)
    for quantization_, dtype in quantizations(rng, count=6):
        values = hard_values(quantization_, dtype, rng)
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(quantize(values, quantization_, dtype), by_hand(values, quantization_, dtype))
