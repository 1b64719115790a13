"""Rules of `edgeml_runtime.quantization` that hold for every input (hypothesis): integers always in range,
order kept, round trip within half a step, saturation beyond the range, steps are fixed points, ties go to
the even integer, and the sign is symmetric. What the rules are is settled by the backend oracle
(test_quantization_oracle.py); these check they hold everywhere, not only on the oracle's values."""

from __future__ import annotations

import numpy as np
from edgeml_runtime.quantization import dequantize, quantize
from edgeml_runtime.specs import Quantization
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

DTYPES = ("int8", "uint8", "int16")
FINITE32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def quantizations(draw):
    """(Quantization, dtype): float32 scales from 2^-20 (about 1e-6) to 1024, any zero point of the dtype."""
    dtype = draw(st.sampled_from(DTYPES))
    info = np.iinfo(dtype)
    scale = draw(st.floats(min_value=2.0**-20, max_value=1024.0, width=32))
    return Quantization(float(scale), draw(st.integers(int(info.min), int(info.max)))), dtype


def _range(quantization: Quantization, dtype):
    """The real values the integers cover: [(min - zp) * scale, (max - zp) * scale] in float64."""
    info = np.iinfo(dtype)
    return ((int(info.min) - quantization.zero_point) * quantization.scale,
            (int(info.max) - quantization.zero_point) * quantization.scale)


@given(quantizations(), arrays(np.float32, st.integers(1, 64), elements=FINITE32))
def test_integers_are_of_the_dtype_in_its_range_and_in_order(q, values):
    quantization, dtype = q
    info = np.iinfo(dtype)
    with np.errstate(over="ignore"):  # huge values overflow to ±inf before they saturate
        result = quantize(values, quantization, dtype)
        ordered = quantize(np.sort(values), quantization, dtype)
    assert result.dtype == np.dtype(dtype) and result.shape == values.shape
    assert result.min() >= info.min and result.max() <= info.max
    assert np.all(np.diff(ordered.astype(np.int64)) >= 0)


@given(quantizations(), st.lists(st.floats(0, 1), min_size=1, max_size=64))
def test_round_trip_is_within_half_a_step(q, fractions):
    quantization, dtype = q
    low, high = _range(quantization, dtype)
    values = np.array([low + f * (high - low) for f in fractions], np.float32)
    values = np.clip(values, np.float32(low), np.float32(high))  # float32 rounding may step past an end
    back = dequantize(quantize(values, quantization, dtype), quantization).astype(np.float64)
    # Half a step, plus the float32 rounding of x / scale (a few ulp of x) and of the result.
    bound = quantization.scale * 0.5 + np.abs(values.astype(np.float64)) * 2.0**-20 + 1e-30
    assert np.all(np.abs(back - values) <= bound)


@given(quantizations(), st.floats(1.0, 1e30), st.booleans())
def test_beyond_the_range_saturates_at_its_ends(q, beyond, below):
    quantization, dtype = q
    info = np.iinfo(dtype)
    low, high = _range(quantization, dtype)
    # At least one whole step past the end (and float32-representable): it must land on the end itself.
    value = np.float32(low - quantization.scale * (1 + beyond) if below else high + quantization.scale * (1 + beyond))
    with np.errstate(over="ignore"):
        result = quantize(np.array([value], np.float32), quantization, dtype)
    assert result[0] == (info.min if below else info.max)


@given(quantizations())
def test_every_integer_is_a_fixed_point(q):
    quantization, dtype = q
    info = np.iinfo(dtype)
    codes = np.linspace(info.min, info.max, num=min(4096, int(info.max) - int(info.min) + 1)).round().astype(dtype)
    np.testing.assert_array_equal(quantize(dequantize(codes, quantization), quantization, dtype), codes)


@given(st.sampled_from(DTYPES), st.integers(-12, 4), st.data())
def test_halfway_values_round_to_the_even_integer(dtype, exponent, data):
    """With a power-of-two scale, (k + 0.5) * scale is exact in float32 and exactly halfway: LiteRT's kernels
    (and numpy's round) take the even neighbour, never 'away from zero'."""
    info = np.iinfo(dtype)
    zero_point = data.draw(st.integers(int(info.min), int(info.max)))
    step = data.draw(st.integers(int(info.min) - zero_point, int(info.max) - zero_point - 1))
    scale = 2.0**exponent
    value = np.float32((step + 0.5) * scale)
    assert float(value) == (step + 0.5) * scale  # exactly halfway
    result = int(quantize(np.array([value]), Quantization(scale, zero_point), dtype)[0]) - zero_point
    assert result in (step, step + 1) and result % 2 == 0


@given(quantizations(), arrays(np.float32, st.integers(1, 64), elements=st.floats(0, 1, width=32)))
def test_the_sign_is_symmetric_around_the_zero_point(q, fractions):
    quantization, dtype = q
    info = np.iinfo(dtype)
    reach = min(int(info.max) - quantization.zero_point, quantization.zero_point - int(info.min))  # steps both ways
    values = (fractions * np.float32(reach * quantization.scale)).astype(np.float32)
    positive = quantize(values, quantization, dtype).astype(np.int64) - quantization.zero_point
    negative = quantize(-values, quantization, dtype).astype(np.int64) - quantization.zero_point
    np.testing.assert_array_equal(negative, -positive)
