"""Input checking's exact messages and edge cases (`edgeml_runtime.feeds.prepare_feeds`), on specs built here as
a backend reports them: the whole message where a user reads it, empty batches, float16, integers fed to a
quantized input, and no numpy warning on the way to a refusal. (The rules for all inputs are in
test_feeds_properties.py; mutation testing showed which details only these pin down.)"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from edgeml_runtime.errors import InputError
from edgeml_runtime.feeds import prepare_feeds
from edgeml_runtime.quantization import quantize
from edgeml_runtime.specs import Quantization, TensorSpec

FEATURES = TensorSpec("features", (None, 8), "float32")


def message(feeds, specs=(FEATURES,), **options) -> str:
    with pytest.raises(InputError) as caught:
        prepare_feeds(feeds, list(specs), **options)
    return str(caught.value)


def test_shape_messages_word_for_word():
    assert message(np.zeros((2, 3, 8), np.float32)) == (
        "input 'features': expected 2 dimensions (None, 8) float32, got (2, 3, 8) float32")
    assert message(np.zeros(8, np.float32)) == (
        "input 'features': expected 2 dimensions (None, 8) float32, got (8,) float32 "
        "(add a batch dimension, e.g. x[None])")
    fixed_batch = TensorSpec("image", (1, 4, 4, 1), "float32")
    assert message(np.zeros((4, 4, 1), np.float32), [fixed_batch]).endswith("(add a batch dimension, e.g. x[None])")
    batch_of_two = TensorSpec("pair", (2, 8), "float32")  # a fixed batch above one: no such hint
    assert message(np.zeros(8, np.float32), [batch_of_two]) == (
        "input 'pair': expected 2 dimensions (2, 8) float32, got (8,) float32")
    assert message(np.zeros((1, 7), np.float32)) == (
        "input 'features': expected shape (None, 8) float32, got (1, 7) float32 (dimension 1 must be 8)")


def test_non_finite_message_says_how_to_allow_it():
    x = np.zeros((1, 8), np.float32)
    x[0, 2] = np.nan
    assert message(x) == ("input 'features': 1 non-finite value(s) (NaN/Inf); clean the data or pass "
                          "allow_nonfinite=True")


def test_data_that_is_not_numbers_is_named():
    assert message([["a", "b", "c", "d", "e", "f", "g", "h"]]) == (
        "input 'features': expected numbers (float32), got dtype <U1")
    assert message(np.array([["a"] * 8])) == "input 'features': expected numbers (float32), got dtype <U1"
    ragged = message([[1.0, 2.0], [3.0]])
    assert ragged.startswith("input 'features': cannot make an array of the given data (")


def test_one_array_for_a_model_with_several_inputs():
    specs = [FEATURES, TensorSpec("meta", (None, 3), "float32")]
    assert message(np.zeros((1, 8), np.float32), specs) == (
        "the model has 2 inputs ['features', 'meta']: pass a list or a dict by name")
    assert message([], specs) == "the model has 2 inputs ['features', 'meta']: pass a list or a dict by name"
    assert message([]) == ("input 'features': expected 2 dimensions (None, 8) float32, got (0,) float64 "
                           "(add a batch dimension, e.g. x[None])")


def test_overflow_is_refused_with_the_type_and_its_maximum_and_no_warning():
    x = np.full((1, 8), 1e39)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from numpy's cast must not escape
        assert message(x) == "input 'features': values overflow float32 (max 3.40282e+38)"
        big = np.full((20, 8), 1e39)  # past the small-input path
        assert message(big) == "input 'features': values overflow float32 (max 3.40282e+38)"


def test_an_empty_batch_and_float16_are_taken():
    (empty,) = prepare_feeds(np.zeros((0, 8)), [FEATURES]).values()
    assert empty.shape == (0, 8) and empty.dtype == np.float32
    half = np.linspace(-2, 2, 16, dtype=np.float16).reshape(2, 8)
    (fed,) = prepare_feeds(half, [FEATURES]).values()
    assert fed.dtype == np.float32 and np.array_equal(fed, half.astype(np.float32))


def test_integers_into_a_quantized_input_are_real_values_unless_raw():
    spec = TensorSpec("features", (None, 8), "int8", Quantization(0.5, -3))
    integers = np.arange(-4, 4, dtype=np.int8).reshape(1, 8)
    (fed,) = prepare_feeds(integers, [spec]).values()  # real values -4..3: quantized to 2x - 3
    np.testing.assert_array_equal(fed, quantize(integers.astype(np.float32), spec.quantization, "int8"))
    np.testing.assert_array_equal(fed, integers.astype(np.int16) * 2 - 3)
    (raw,) = prepare_feeds(integers, [spec], raw=True).values()
    assert raw is integers


def test_the_cheap_path_hands_the_array_over_untouched():
    x = np.zeros((3, 8), np.float32)
    assert prepare_feeds(x, [FEATURES])["features"] is x
    assert prepare_feeds({"features": x}, [FEATURES])["features"] is x
