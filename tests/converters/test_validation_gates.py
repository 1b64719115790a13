"""The validation gates themselves (`edgeml_converters.validation`), without TensorFlow: the metrics on outputs
whose differences are known exactly, every gate at its threshold and just past it, and the runner on a
committed tiny model in the real runtime. The end-to-end fp32 case is test_fp32_gate.py."""

from __future__ import annotations

import numpy as np
import pytest
from edgeml_converters.calibration import Dataset
from edgeml_converters.modes import Mode
from edgeml_converters.validation import (
    DEFAULT_GATES,
    MIN_DECISIVE_FRACTION,
    TIE_FACTOR,
    Gate,
    check_outputs,
    compare_outputs,
    decisive_agreement,
    gates_with_overrides,
    not_runnable,
    run_artifact,
    run_batches,
    validate,
)

from tests.support.marks import require_backend_for
from tests.support.models import MLP_FP32

DATA = Dataset({"x": np.zeros((4, 3), np.float32)}, "test data")


def test_the_default_gates_are_the_documented_ones():
    assert (TIE_FACTOR, MIN_DECISIVE_FRACTION) == (4.0, 0.5)
    assert {
        Mode.FP32: Gate(max_relative_diff=1e-4),
        Mode.FP16: Gate(min_cosine=0.999, min_agreement=0.99),
        Mode.DYNAMIC: Gate(min_cosine=0.99, min_agreement=0.97),
        Mode.INT8: Gate(min_cosine=0.98, min_agreement=0.95),
        Mode.INT16X8: Gate(min_cosine=0.99, min_agreement=0.97),
    } == DEFAULT_GATES
    assert gates_with_overrides() == DEFAULT_GATES


def test_overrides_replace_only_their_own_threshold_and_zero_counts():
    gates = gates_with_overrides(fp32_tolerance=0.0)
    assert gates[Mode.FP32] == Gate(max_relative_diff=0.0)
    assert {mode: gate for mode, gate in gates.items() if mode is not Mode.FP32} == {
        mode: gate for mode, gate in DEFAULT_GATES.items() if mode is not Mode.FP32}
    gates = gates_with_overrides(min_cosine=0.5)
    assert gates[Mode.FP32] == DEFAULT_GATES[Mode.FP32]
    for mode in (Mode.FP16, Mode.DYNAMIC, Mode.INT8, Mode.INT16X8):
        assert gates[mode] == Gate(min_cosine=0.5, min_agreement=DEFAULT_GATES[mode].min_agreement)
    gates = gates_with_overrides(min_agreement=0.0)
    for mode in (Mode.FP16, Mode.DYNAMIC, Mode.INT8, Mode.INT16X8):
        assert gates[mode] == Gate(min_cosine=DEFAULT_GATES[mode].min_cosine, min_agreement=0.0)


def test_gate_descriptions():
    assert Gate().describe() == ""
    assert Gate(max_relative_diff=1e-4).describe() == "max diff <= 0.0001 x output range"
    assert Gate(min_cosine=0.98, min_agreement=0.95).describe() == (
        "cosine >= 0.98, decisive top-1 agreement >= 0.95")
    assert Gate(2e-5, 0.5, 0.25).describe() == (
        "max diff <= 2e-05 x output range, cosine >= 0.5, decisive top-1 agreement >= 0.25")


def test_identical_outputs():
    reference = {"scores": np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])}
    metrics = compare_outputs(reference, {"scores": reference["scores"].copy()})
    assert metrics["max_abs_diff"] == 0.0 and metrics["relative_max_abs_diff"] == 0.0
    assert metrics["cosine"] == pytest.approx(1.0, abs=1e-12) and metrics["top1_agreement"] == 1.0
    assert metrics["decisive_top1_agreement"] == 1.0 and metrics["decisive_samples"] == 2
    assert metrics["tie_margin"] == 0.0 and metrics["gated_agreement"] == 1.0


def test_differences_are_absolute_and_relative_to_the_output_range_worst_output_first():
    reference = {"a": np.array([[-2.0, 4.0], [1.0, 2.0]]), "b": np.array([[10.0], [30.0]])}
    candidate = {"a": np.array([[-2.0, 4.5], [1.0, 2.0]]), "b": np.array([[10.0], [29.0]])}
    metrics = compare_outputs(reference, candidate)
    assert metrics["max_abs_diff"] == 1.0  # from b
    assert metrics["relative_max_abs_diff"] == 0.5 / 6.0  # a: 0.5 of a range of 6 (not of |4|); b: 1 of 20
    # b is one value per sample: its cosine is over the batch vector, (10, 30) vs (10, 29)
    batch_cosine = (100 + 870) / (np.hypot(10, 30) * np.hypot(10, 29))
    row_cosine = np.mean([(4 + 18) / (np.hypot(2, 4) * np.hypot(2, 4.5)), 1.0])  # a: per sample, averaged
    assert metrics["cosine"] == pytest.approx(min(batch_cosine, row_cosine), abs=1e-12)  # the worst output
    assert metrics["top1_agreement"] == 1.0  # only a is a classifier output


def test_an_empty_output_counts_as_equal_and_the_others_are_still_measured():
    """A detector that found nothing gives an empty output on both sides: nothing differs there."""
    reference = {"boxes": np.zeros((0, 4)), "scores": np.array([[0.1, 0.9]])}
    candidate = {"boxes": np.zeros((0, 4)), "scores": np.array([[0.1, 0.8]])}
    metrics = compare_outputs(reference, candidate)
    assert metrics["max_abs_diff"] == pytest.approx(0.1) and metrics["relative_max_abs_diff"] == pytest.approx(0.125)
    assert metrics["top1_agreement"] == 1.0
    nothing = compare_outputs({"boxes": np.zeros((0, 4))}, {"boxes": np.zeros((0, 4))})
    assert nothing["max_abs_diff"] == 0.0 and nothing["cosine"] == 1.0 and nothing["top1_agreement"] is None


def test_a_range_below_one_is_still_the_range():
    metrics = compare_outputs({"p": np.array([[0.25, 0.75], [0.5, 0.5]])}, {"p": np.array([[0.25, 0.625], [0.5, 0.5]])})
    assert metrics["relative_max_abs_diff"] == 0.125 / 0.5  # the range 0.5, not the magnitude 0.75


def test_float32_outputs_are_measured_in_float64():
    """float32 outputs near float32's limits: their range overflows float32, not float64."""
    reference = np.array([[-3e38, 3e38]], np.float32)
    candidate = np.array([[-3e38, 2.9e38]], np.float32)
    metrics = compare_outputs({"y": reference}, {"y": candidate})
    assert metrics["relative_max_abs_diff"] == pytest.approx(
        (float(reference[0, 1]) - float(candidate[0, 1])) / (2 * float(reference[0, 1])), rel=1e-9)


def test_a_candidate_of_another_shape_but_the_same_values_is_compared_value_by_value():
    reference = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    metrics = compare_outputs({"y": reference}, {"y": reference.reshape(2, 1, 3)})  # e.g. ONNX's extra axis
    assert metrics["max_abs_diff"] == 0.0 and metrics["top1_agreement"] == 1.0


def test_no_outputs_compare_as_equal():
    assert compare_outputs({}, {}) == {
        "max_abs_diff": 0.0, "relative_max_abs_diff": 0.0, "cosine": 1.0, "top1_agreement": None,
        "decisive_top1_agreement": None, "decisive_samples": None, "tie_margin": None, "gated_agreement": None}


def test_a_constant_output_is_measured_against_its_magnitude_and_zero_against_a_tiny_floor():
    constant = compare_outputs({"y": np.full((3, 2), 5.0)}, {"y": np.full((3, 2), 5.5)})
    assert constant["relative_max_abs_diff"] == pytest.approx(0.5 / 5.0)
    zeros = compare_outputs({"y": np.zeros((2, 1))}, {"y": np.full((2, 1), 1e-9)})
    assert zeros["relative_max_abs_diff"] == pytest.approx(1e-9 / 1e-12)
    negative = compare_outputs({"y": np.full((2, 1), -4.0)}, {"y": np.full((2, 1), -3.0)})
    assert negative["relative_max_abs_diff"] == pytest.approx(1.0 / 4.0)


def test_non_classifier_outputs():
    images = compare_outputs({"y": np.ones((2, 2, 2))}, {"y": np.ones((2, 2, 2))})
    assert images["top1_agreement"] is None and images["gated_agreement"] is None
    assert images["cosine"] == pytest.approx(1.0)


def test_cosine_of_zero_rows_opposite_rows_and_one_zero_row():
    zero = compare_outputs({"y": np.zeros((2, 3))}, {"y": np.zeros((2, 3))})
    assert zero["cosine"] == 1.0
    opposite = compare_outputs({"y": np.array([[1.0, 2.0], [3.0, -1.0]])}, {"y": np.array([[-1.0, -2.0], [-3.0, 1.0]])})
    assert opposite["cosine"] == pytest.approx(-1.0)
    one_zero = compare_outputs({"y": np.array([[1.0, 2.0]])}, {"y": np.array([[0.0, 0.0]])})
    assert one_zero["cosine"] == 0.0
    # A zero row among others: that row agrees (cosine 1), whatever the other rows hold.
    mixed = np.array([[0.0, 0.0], [1.0, 2.0]])
    assert compare_outputs({"y": mixed}, {"y": mixed.copy()})["cosine"] == pytest.approx(1.0)
    assert compare_outputs({"y": mixed}, {"y": np.array([[0.0, 0.0], [2.0, -1.0]])})["cosine"] == pytest.approx(0.5)


def test_flips_within_the_noise_are_not_decisive_and_real_flips_are():
    # Four samples with a median per-sample error of 0.01: the band is TIE_FACTOR x 0.01 = 0.04.
    expected = np.array([[0.50, 0.49, 0.01], [0.90, 0.05, 0.05], [0.10, 0.80, 0.10], [0.60, 0.35, 0.05]])
    actual = expected + np.array([[-0.01, 0.01, 0], [0.01, 0, 0], [0, -0.01, 0], [-0.2, 0.2, 0]])
    result = decisive_agreement(expected, actual)
    assert result["margin"] == pytest.approx(0.04)
    # Margins 0.01 (tie), 0.85, 0.70, 0.25: three decisive, of which the last flipped.
    assert result["samples"] == 3 and result["agreement"] == pytest.approx(2 / 3)
    assert result["gated"] == pytest.approx(2 / 3)  # 3 of 4 decisive is enough (>= half)


def test_a_margin_exactly_at_the_band_is_not_decisive():
    expected = np.array([[0.75, 0.25], [0.25, 0.75]])  # binary fractions: every difference below is exact
    actual = expected + np.array([[0.125, 0.0], [0.0, 0.125]])  # median error 1/8: band 1/2, both margins 1/2
    result = decisive_agreement(expected, actual)
    assert result["samples"] == 0 and result["agreement"] is None and result["gated"] == 1.0


def test_with_too_few_decisive_samples_the_raw_agreement_gates():
    expected = np.array([[0.50, 0.49], [0.49, 0.50], [0.45, 0.55], [0.9, 0.1]])
    actual = np.array([[0.49, 0.50], [0.50, 0.49], [0.44, 0.56], [0.9, 0.1]])  # median error 0.01
    result = decisive_agreement(expected, actual)  # margins 0.01, 0.01, 0.1, 0.8 vs a band of 0.04
    assert result["samples"] == 2 and result["agreement"] == 1.0
    assert result["gated"] == 1.0  # 2 of 4 is exactly half: still decisive enough
    three = decisive_agreement(expected[[0, 1, 3]], actual[[0, 1, 3]])  # 1 of 3 decisive: raw agreement
    assert three["samples"] == 1 and three["agreement"] == 1.0 and three["gated"] == pytest.approx(1 / 3)


def test_the_worst_classifier_output_sets_the_gated_agreement():
    good = np.array([[0.9, 0.1], [0.1, 0.9]])
    bad_reference, bad_candidate = np.array([[0.9, 0.1], [0.8, 0.2]]), np.array([[0.1, 0.9], [0.8, 0.2]])
    metrics = compare_outputs({"good": good, "bad": bad_reference}, {"good": good, "bad": bad_candidate})
    assert metrics["top1_agreement"] == 0.5 and metrics["gated_agreement"] == 0.5


def _check(reference, outputs, gate, synthetic=False):
    return check_outputs({"y": np.asarray(reference, float)}, {"y": np.asarray(outputs, float)}, DATA, gate,
                         synthetic=synthetic, runner="test")


REFERENCE = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]


def test_the_fp32_gate_passes_at_its_tolerance_and_fails_past_it():
    outputs = np.array(REFERENCE) + np.array([[0.25, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]])  # 0.25 of range 1
    assert _check(REFERENCE, outputs, Gate(max_relative_diff=0.25))["passed"] is True
    failed = _check(REFERENCE, outputs, Gate(max_relative_diff=0.2499))
    assert failed["passed"] is False and failed["relative_max_abs_diff"] == 0.25 and failed["max_abs_diff"] == 0.25
    assert failed["gate"] == "max diff <= 0.2499 x output range"
    assert _check(REFERENCE, REFERENCE, Gate(max_relative_diff=0.0))["passed"] is True


def test_the_cosine_gate_passes_at_its_minimum_and_fails_below():
    outputs = [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]  # first row: cosine 1/sqrt(2)
    cosine = _check(REFERENCE, outputs, Gate())["cosine"]
    assert cosine == pytest.approx((3 + 2**-0.5) / 4)
    assert _check(REFERENCE, outputs, Gate(min_cosine=cosine))["passed"] is True
    assert _check(REFERENCE, outputs, Gate(min_cosine=cosine + 1e-9))["passed"] is False


def test_the_agreement_gate_on_real_data_and_not_on_synthetic_data():
    flipped = [[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]  # one of four decisive flips
    check = _check(REFERENCE, flipped, Gate(min_agreement=0.75))
    assert check["passed"] is True and check["decisive_top1_agreement"] == 0.75 and check["top1_agreement"] == 0.75
    assert check["gate"] == "decisive top-1 agreement >= 0.75"
    failed = _check(REFERENCE, flipped, Gate(min_cosine=0.0, min_agreement=0.76))
    assert failed["passed"] is False
    synthetic = _check(REFERENCE, flipped, Gate(min_cosine=0.0, min_agreement=0.76), synthetic=True)
    assert synthetic["passed"] is True and synthetic["gate"] == "cosine >= 0"  # reported, not gated
    regression = check_outputs({"y": np.ones((4, 1))}, {"y": np.ones((4, 1))}, DATA, Gate(min_agreement=1.0),
                               synthetic=False, runner="test")
    assert regression["passed"] is True  # no classifier output: nothing to agree on


def test_every_gate_must_hold():
    outputs = np.array(REFERENCE) * 0.5 + 0.1
    check = _check(REFERENCE, outputs, Gate(max_relative_diff=1.0, min_cosine=0.99))
    assert check["passed"] is False  # the difference is within 1.0, the cosine is not
    assert check["passed"] is _check(REFERENCE, outputs, Gate(min_cosine=0.99))["passed"]


def test_the_entry_reports_what_was_measured():
    check = _check(REFERENCE, REFERENCE, Gate(min_cosine=0.9, min_agreement=0.9))
    assert check["samples"] == 4 and check["data"] == "test data" and check["runner"] == "test"
    assert check["decisive_samples"] == 4 and check["tie_margin"] == 0.0
    assert set(check) >= {"max_abs_diff", "cosine", "top1_agreement", "passed", "relative_max_abs_diff", "gate"}
    assert not_runnable(DATA, "needs Flex ops") == {
        "samples": 0, "max_abs_diff": None, "cosine": None, "top1_agreement": None,
        "decisive_top1_agreement": None, "passed": False, "error": "needs Flex ops", "data": "test data"}


def test_run_batches_keeps_order_and_takes_a_fixed_batch_or_chunks():
    data = Dataset({"x": np.arange(10.0).reshape(10, 1), "z": np.arange(10.0, 20.0).reshape(10, 1)}, "d")
    seen = []

    def run(feeds):
        seen.append(len(feeds["x"]))
        return {"sum": feeds["x"] + feeds["z"]}

    assert run_batches(run, 1, data)["sum"].ravel().tolist() == list(range(10, 30, 2))
    assert seen == [1] * 10
    seen.clear()
    assert run_batches(run, None, data, chunk=4)["sum"].shape == (10, 1) and seen == [4, 4, 2]
    seen.clear()
    run_batches(run, None, data)
    assert seen == [10]  # the default chunk, 256, holds them all


def test_validate_runs_the_artifact_in_the_runtime_and_gates_it():
    require_backend_for(MLP_FP32)
    x = np.random.default_rng(0).normal(size=(7, 8)).astype(np.float32)
    data = Dataset({"features": x}, "array")
    outputs, runner = run_artifact(MLP_FP32, data)
    assert runner == "edgeml_runtime/litert" and next(iter(outputs.values())).shape == (7, 4)
    reference = dict(outputs)
    passed = validate(MLP_FP32, reference, data, Gate(max_relative_diff=0.0), synthetic=False)
    assert passed["passed"] is True and passed["samples"] == 7 and passed["runner"] == runner
    shifted = {name: value + 1e-3 for name, value in reference.items()}  # an fp32 artifact 1e-3 off
    failed = validate(MLP_FP32, shifted, data, DEFAULT_GATES[Mode.FP32], synthetic=False)
    assert failed["passed"] is False and failed["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3)
    # Every class order reversed: top-1 disagrees. It gates on real data, and not on synthetic data.
    reversed_classes = {name: value[:, ::-1] for name, value in reference.items()}
    assert validate(MLP_FP32, reversed_classes, data, Gate(min_agreement=0.99), synthetic=False)["passed"] is False
    assert validate(MLP_FP32, reversed_classes, data, Gate(min_agreement=0.99), synthetic=True)["passed"] is True


def test_a_model_with_a_fixed_batch_is_run_one_sample_at_a_time():
    from tests.support.models import DATA as MODELS

    oracle = MODELS / "quantize_oracle.tflite"  # every input is (1, 512)
    require_backend_for(oracle)
    rng = np.random.default_rng(1)
    names = ["real_a", "integers_a", "real_b", "integers_b", "real_c", "integers_c", "real_d", "integers_d"]
    data = Dataset({name: rng.uniform(-1, 1, (3, 512)).astype(np.float32) for name in names}, "array")
    outputs, _ = run_artifact(oracle, data)
    assert outputs["dequantized_a"].shape == (3, 512)  # three runs of one, concatenated
