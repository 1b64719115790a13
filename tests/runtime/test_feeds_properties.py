"""Rules of input checking (`edgeml_runtime.feeds.prepare_feeds`) that hold for every input (hypothesis):
shapes that fit pass unchanged in value, shapes that do not are refused naming the input; casts are taken
only when nothing is lost; any NaN/Inf is refused and counted unless allowed; float inputs of a quantized
model are quantized; one array, a list and a dict give the same feeds. No model or backend: the specs are
built here, as a backend reports them."""

from __future__ import annotations

import numpy as np
import pytest
from edgeml_runtime.errors import InputError
from edgeml_runtime.feeds import prepare_feeds
from edgeml_runtime.quantization import quantize
from edgeml_runtime.specs import Quantization, TensorSpec
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

FLOAT_TYPES = ("float16", "float32", "float64")
INT_TYPES = ("int8", "uint8", "int16", "int32", "int64")


@st.composite
def spec_and_shape(draw, dtypes=("float32",)):
    """A spec (some dimensions dynamic) and an array shape that fits it (1 to ~400 values, so both the
    plain-Python checks for small inputs and numpy's for larger ones are exercised)."""
    shape = draw(array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=7))
    dynamic = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    spec_shape = tuple(None if free else side for side, free in zip(shape, dynamic))
    return TensorSpec(draw(st.sampled_from(["x", "features", "image_0"])), spec_shape,
                      draw(st.sampled_from(dtypes))), shape


def _finite(dtype):
    info = np.finfo(dtype)
    return st.floats(float(info.min), float(info.max), width=info.bits, allow_nan=False, allow_infinity=False)


@given(st.data())
def test_arrays_that_fit_come_back_with_the_same_values(data):
    spec, shape = data.draw(spec_and_shape(FLOAT_TYPES))
    array = data.draw(arrays(spec.numpy_dtype, shape, elements=_finite(spec.numpy_dtype)))
    (name, fed), = prepare_feeds(array, [spec]).items()
    assert name == spec.name and fed.dtype == spec.numpy_dtype and fed.shape == shape
    assert fed.flags.c_contiguous
    np.testing.assert_array_equal(fed, array)


@given(st.data())
def test_a_dimension_or_rank_that_does_not_fit_is_refused_naming_the_input(data):
    spec, shape = data.draw(spec_and_shape())
    fixed = [index for index, side in enumerate(spec.shape) if side is not None]
    how = data.draw(st.sampled_from(["rank+", "rank-", "side"] if fixed else ["rank+", "rank-"]))
    if how == "rank+":
        wrong = shape + (1,)
    elif how == "rank-":
        assume(len(shape) > 1)
        wrong = shape[:-1]
    else:
        index = data.draw(st.sampled_from(fixed))
        wrong = tuple(side + data.draw(st.integers(1, 3)) if i == index else side for i, side in enumerate(shape))
    with pytest.raises(InputError) as caught:
        prepare_feeds(np.zeros(wrong, np.float32), [spec])
    message = str(caught.value)
    assert f"input '{spec.name}'" in message and spec.describe() in message and str(tuple(wrong)) in message


@given(st.data())
def test_any_nan_or_inf_is_refused_and_counted_unless_allowed(data):
    spec, shape = data.draw(spec_and_shape(("float32",)))
    dtype = data.draw(st.sampled_from(["float32", "float64"]))
    array = data.draw(arrays(dtype, shape, elements=st.floats(-1e3, 1e3, width=32)))
    spots = data.draw(st.sets(st.integers(0, array.size - 1), min_size=1, max_size=min(5, array.size)))
    flat = array.reshape(-1)
    for spot in spots:
        flat[spot] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with pytest.raises(InputError, match=rf"input '{spec.name}': {len(spots)} non-finite value\(s\)"):
        prepare_feeds(array, [spec])
    (fed,) = prepare_feeds(array, [spec], allow_nonfinite=True).values()
    np.testing.assert_array_equal(np.isfinite(fed), np.isfinite(array))


@given(st.data())
def test_integer_and_float_casts_are_taken_only_when_nothing_is_lost(data):
    target = data.draw(st.sampled_from(("float32",) + INT_TYPES))
    spec, shape = data.draw(spec_and_shape((target,)))
    source = data.draw(st.sampled_from(INT_TYPES + ("float64",)))
    if source == "float64":
        elements = st.floats(-1e39, 1e39, allow_nan=False) if target == "float32" else st.integers(-300, 300)
    else:
        info = np.iinfo(source)
        elements = st.integers(int(info.min), int(info.max))
    array = data.draw(arrays(source, shape, elements=elements))
    if np.dtype(source).kind == "f" and np.dtype(target).kind in "iu":
        lossless = np.can_cast(source, target, "safe")  # float into integers: refused
    elif source == "float64":
        with np.errstate(over="ignore"):  # rounding to float32 is fine, overflowing to infinity is not
            lossless = bool(np.isfinite(array.astype(np.float32)).all())
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            lossless = np.array_equal(array.astype(target).astype(source), array)
    if lossless:
        (fed,) = prepare_feeds(array, [spec]).values()
        assert fed.dtype == np.dtype(target)
        np.testing.assert_array_equal(fed, array.astype(target))
    else:
        with pytest.raises(InputError, match=rf"input '{spec.name}'"):
            prepare_feeds(array, [spec])


@given(st.data())
def test_float_inputs_of_a_quantized_input_are_quantized_and_raw_integers_pass(data):
    dtype = data.draw(st.sampled_from(("int8", "uint8", "int16")))
    info = np.iinfo(dtype)
    quantization = Quantization(float(data.draw(st.floats(2.0**-10, 4.0, width=32))),
                                data.draw(st.integers(int(info.min), int(info.max))))
    spec, shape = data.draw(spec_and_shape((dtype,)))
    spec = TensorSpec(spec.name, spec.shape, dtype, quantization)
    values = data.draw(arrays(np.float64, shape, elements=st.floats(-1e4, 1e4)))
    (fed,) = prepare_feeds(values, [spec]).values()
    assert fed.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(fed, quantize(values.astype(np.float32), quantization, dtype))
    integers = data.draw(arrays(dtype, shape))
    (raw,) = prepare_feeds(integers, [spec], raw=True).values()
    np.testing.assert_array_equal(raw, integers)


@given(st.data())
def test_one_array_a_list_and_a_dict_give_the_same_feeds(data):
    spec, shape = data.draw(spec_and_shape(FLOAT_TYPES))
    array = data.draw(arrays(np.float64, shape, elements=st.floats(-1e3, 1e3)))
    forms = [array, [array], {spec.name: array}, array.tolist()]
    results = [prepare_feeds(form, [spec]) for form in forms]
    for result in results:
        assert list(result) == [spec.name]
        np.testing.assert_array_equal(result[spec.name], results[0][spec.name])
        assert result[spec.name].dtype == spec.numpy_dtype


@given(st.data())
def test_several_inputs_are_matched_by_name_and_position(data):
    count = data.draw(st.integers(2, 4))
    specs = [TensorSpec(f"input_{i}", (None, i + 1), "float32") for i in range(count)]
    arrays_ = [np.full((2, i + 1), i, np.float32) for i in range(count)]
    order = data.draw(st.permutations(range(count)))
    by_name = prepare_feeds({specs[i].name: arrays_[i] for i in order}, specs)
    by_position = prepare_feeds(arrays_, specs)
    for i, spec in enumerate(specs):
        np.testing.assert_array_equal(by_name[spec.name], arrays_[i])
        np.testing.assert_array_equal(by_position[spec.name], arrays_[i])
    with pytest.raises(InputError, match="missing input"):
        prepare_feeds({specs[i].name: arrays_[i] for i in order[1:]}, specs)
    with pytest.raises(InputError, match=rf"got {count - 1} arrays, but the model has {count} inputs"):
        prepare_feeds(arrays_[1:], specs)
