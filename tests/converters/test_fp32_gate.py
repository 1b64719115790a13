"""The fp32 gate really gates: an fp32 artifact whose difference from the original exceeds `--fp32-tolerance`
fails validation (passed false, exit 1), one exactly at the tolerance passes. Real conversions: TensorFlow's
TFLite converter and tf2onnx, the artifacts run in LiteRT and ONNX Runtime.

A float32 conversion is not bit-exact (kernels accumulate in another order), so the measured relative
difference d is small but above zero: tolerances below d must fail, d itself and above must pass.
"""

from __future__ import annotations

import json

import pytest
from edgeml_converters import GatesFailed, convert

from tests.support.cli import invoke

pytestmark = pytest.mark.slow


def _fp32(models, out, **options):
    return convert(models.paths.sequential, out, formats=("tflite", "onnx"), modes=("fp32",), isolate=False,
                   validate_data=models.x, **options)


def _checks(manifest) -> dict:
    return {entry["path"]: entry["validation"] for entry in manifest["artifacts"]}


def test_an_fp32_artifact_beyond_the_tolerance_fails_and_one_at_it_passes(models, tmp_path):
    measured = _checks(_fp32(models, tmp_path / "default"))
    assert set(measured) == {"sequential.fp32.tflite", "sequential.fp32.onnx"}
    for path, check in measured.items():
        # The default tolerance, 1e-4 of the output range, holds; the difference is real, not zero.
        assert check["passed"] is True and 0 < check["relative_max_abs_diff"] <= 1e-4, (path, check)
        assert check["gate"] == "max diff <= 0.0001 x output range"
    smallest = min(check["relative_max_abs_diff"] for check in measured.values())
    largest = max(check["relative_max_abs_diff"] for check in measured.values())

    with pytest.raises(GatesFailed) as failed:
        _fp32(models, tmp_path / "tight", fp32_tolerance=smallest / 2)
    for path, check in _checks(failed.value.manifest).items():
        assert check["passed"] is False, (path, check)
        assert check["relative_max_abs_diff"] == measured[path]["relative_max_abs_diff"]  # same files, same data
        assert check["gate"] == f"max diff <= {smallest / 2:g} x output range"
    assert (tmp_path / "tight" / "sequential.fp32.tflite").is_file()  # kept, as for every failed gate

    # Exactly at the tolerance passes (the gate is `<=`): each artifact against its own measured difference.
    for path, check in measured.items():
        fmt = path.rsplit(".", 1)[1]
        again = convert(models.paths.sequential, tmp_path / f"exact-{fmt}", formats=(fmt,), modes=("fp32",),
                        isolate=False, validate_data=models.x, fp32_tolerance=check["relative_max_abs_diff"])
        assert _checks(again)[path]["passed"] is True
    assert all(check["passed"] for check in _checks(_fp32(models, tmp_path / "loose",
                                                          fp32_tolerance=largest * 1.001)).values())


def test_cli_fp32_tolerance_missed_exits_1_with_passed_false(models, tmp_path):
    out = tmp_path / "out"
    result = invoke("convert", models.paths.sequential, "--to", "tflite", "--quantize", "fp32",
                    "--validate-data", models.paths.features, "--fp32-tolerance", "1e-12", "-o", out)
    assert result.exit_code == 1, result.output
    assert "failed validation: sequential.fp32.tflite" in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    (check,) = _checks(manifest).values()
    assert check["passed"] is False and check["relative_max_abs_diff"] > 1e-12
    assert check["gate"] == "max diff <= 1e-12 x output range"
