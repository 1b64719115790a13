"""The input range as a fact of the conversion: declared, recorded by the trainer, or read from the data; image
folders scaled into it, synthetic data drawn inside it, and the manifest saying which and how.

The first tests need no TensorFlow; the conversions are real (TensorFlow, LiteRT), TFLite only to keep them short.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from edgeml_converters.errors import CalibrationError
from edgeml_converters.input_range import (
    FROM_FLAG,
    FROM_LABELS,
    InputRange,
    declared_ranges,
    map_pixels,
    parse_input_ranges,
    synthetic_in_range,
    widely_outside,
)
from edgeml_converters.loading import TensorInfo
from edgeml_runtime import InputError

from tests.support.cli import invoke

IMAGE = [TensorInfo("image", (None, 4, 4, 1), "float32")]
TWO = [TensorInfo("a", (None, 3), "float32"), TensorInfo("b", (None, 2), "float32")]


def test_input_range_values_parse_and_bad_ones_name_the_flag():
    assert parse_input_ranges("0,1") == (("", 0.0, 1.0),)
    assert parse_input_ranges(["a=-1,1", "b=0,255"]) == (("a", -1.0, 1.0), ("b", 0.0, 255.0))
    assert parse_input_ranges((0, 255)) == (("", 0.0, 255.0),)
    assert parse_input_ranges({"a": (0, 1)}) == (("a", 0.0, 1.0),)
    assert parse_input_ranges(None) == parse_input_ranges(()) == ()
    for bad in ("1,0", "0", "x,1", "0,inf", ["0,1", "a=0,1"], ["a=0,1", "a=0,2"]):
        with pytest.raises(InputError, match="--input-range"):
            parse_input_ranges(bad)


def test_declared_ranges_come_from_the_flag_then_labels_then_the_model():
    labels = {"inputs": [{"name": "image"}], "image": {"value_range": [0, 16]}}
    assert declared_ranges(parse_input_ranges("0,1"), IMAGE, labels=labels)["image"] == InputRange(0, 1, FROM_FLAG)
    recorded = declared_ranges((), IMAGE, labels=labels)["image"]
    assert (recorded.low, recorded.high) == (0, 16) and recorded.origin.startswith(FROM_LABELS)
    assert declared_ranges((), IMAGE, labels={"inputs": [{"name": "image"}]}) == {}
    # One unnamed range with several inputs applies to each; a name the model lacks is an error naming its inputs.
    assert set(declared_ranges(parse_input_ranges("0,1"), TWO)) == {"a", "b"}
    with pytest.raises(InputError, match=r"no input 'c'.*\['a', 'b'\]"):
        declared_ranges(parse_input_ranges("c=0,1"), TWO)


def test_pixels_map_onto_the_declared_range():
    pixels = np.array([0, 127.5, 255], dtype=np.float32)
    for (low, high), expected, text in (((0, 1), [0, 0.5, 1], "/ 255"), ((-1, 1), [-1, 0, 1], "/ 127.5 - 1"),
                                        ((0, 255), [0, 127.5, 255], "as they are"), ((0, 16), [0, 8, 16], "0..16")):
        mapped, how = map_pixels(pixels, InputRange(low, high, FROM_FLAG))
        np.testing.assert_allclose(mapped, expected, atol=1e-5)
        assert text in how


def test_synthetic_data_stay_inside_the_range_and_far_outside_is_told_apart():
    arrays, text = synthetic_in_range(IMAGE, {"image": InputRange(0, 255, FROM_FLAG)}, count=200, seed=0)
    assert arrays["image"].shape == (200, 4, 4, 1) and text == "synthetic uniform [0, 255)"
    assert arrays["image"].min() >= 0 and arrays["image"].max() < 255 and arrays["image"].max() > 200
    assert not widely_outside((0.0, 1.0), (0.0, 1.2)) and not widely_outside((0.0, 1.0), (-1.0, 1.0))
    assert widely_outside((0.0, 1.0), (0.0, 255.0))


# --- real conversions ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def range_models(tmp_path_factory):
    from PIL import Image

    from tests.support.precision_models import raw_range_features, unit_range_images

    root = tmp_path_factory.mktemp("ranges")
    unit, x, _ = unit_range_images()
    unit.save(root / "unit.keras")
    folder = root / "pngs"
    folder.mkdir()
    for index in range(60):
        Image.fromarray((x[index, :, :, 0] * 255).round().astype(np.uint8)).save(folder / f"{index:03d}.png")
    raw, features, labels = raw_range_features()
    raw.save(root / "raw.keras")
    np.save(root / "raw_x.npy", features)
    np.save(root / "unit_x.npy", x)
    return root


def _convert(source, out, **options):
    from edgeml_converters import convert

    events = []
    manifest = convert(source, out, isolate=False, formats=("tflite",), modes=("fp32", "int8"),
                       progress=events.append, **options)
    return manifest, [event.message for event in events if event.level == "warning"]


def _int8(manifest):
    return next(entry for entry in manifest["artifacts"] if entry["quantization"] == "int8")


@pytest.mark.slow
def test_png_folder_scaled_by_the_declared_range_passes_its_gate(range_models, tmp_path):
    manifest, warnings = _convert(range_models / "unit.keras", tmp_path / "out", calibration=range_models / "pngs",
                                  input_range="0,1")
    assert _int8(manifest)["validation"]["passed"] is True and not warnings
    calibration = manifest["calibration"]
    assert calibration["input_range"] == {"image": {"low": 0, "high": 1, "from": "--input-range"}}
    assert "pixels / 255" in calibration["preprocessing"]["image"]
    assert "synthetic" not in calibration


@pytest.mark.slow
def test_png_folder_without_a_range_exits_2_naming_the_flag(range_models, tmp_path):
    result = invoke("convert", range_models / "unit.keras", "--int8", "--to", "tflite", "--calibration",
                    range_models / "pngs", "-o", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "--input-range 0,1" in result.stderr and "0..255" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_synthetic_calibration_inside_the_declared_range_agrees_on_real_inputs(range_models, tmp_path):
    import edgeml_runtime
    import keras

    real = np.load(range_models / "raw_x.npy")[:300]  # real-range inputs, 0..255, that neither run saw
    original = keras.saving.load_model(range_models / "raw.keras").predict(real, verbose=0).argmax(axis=1)

    def agreement(manifest, out):
        model = edgeml_runtime.load(out / _int8(manifest)["path"])
        return float(np.mean(model.run(real)["output_0"].argmax(axis=1) == original))

    declared, warnings = _convert(range_models / "raw.keras", tmp_path / "declared", calibration="synthetic",
                                  input_range="0,255")
    assert declared["calibration"]["synthetic"] is True and declared["calibration"]["validation_synthetic"] is True
    assert declared["calibration"]["input_range"]["features"]["high"] == 255
    assert _int8(declared)["validation"]["synthetic"] is True
    assert any("synthetic" in warning and "[0, 255]" in warning for warning in warnings)
    assert agreement(declared, tmp_path / "declared") >= 0.9

    # Without a range: [0, 1) as before, a warning that says so, and an int8 file that is wrong on real inputs
    # although it passes its own (equally synthetic) validation.
    guessed, warnings = _convert(range_models / "raw.keras", tmp_path / "guessed", calibration="synthetic")
    assert any("synthetic" in warning and "--input-range" in warning for warning in warnings)
    assert guessed["calibration"]["synthetic"] is True and guessed["calibration"]["input_range"] == {}
    assert agreement(guessed, tmp_path / "guessed") < agreement(declared, tmp_path / "declared") - 0.2


@pytest.mark.slow
def test_validation_data_far_outside_the_calibration_range_warn(range_models, tmp_path):
    unit = np.load(range_models / "unit_x.npy")
    np.save(tmp_path / "pixels.npy", unit * 255.0)
    from edgeml_converters import GatesFailed, convert

    events = []
    with pytest.raises(GatesFailed):  # 0..255 inputs into a model calibrated on 0..1: the int8 file clips them
        convert(range_models / "unit.keras", tmp_path / "out", isolate=False, formats=("tflite",),
                modes=("fp32", "int8"), calibration=range_models / "unit_x.npy", validate_data=tmp_path / "pixels.npy",
                repair=False, progress=events.append)
    warnings = [event.message for event in events if event.level == "warning"]
    assert any("255], far outside the calibration data's" in warning for warning in warnings), warnings
    # And calibration data outside a declared range are pointed out.
    _, warnings = _convert(range_models / "unit.keras", tmp_path / "declared", calibration=tmp_path / "pixels.npy",
                           input_range="0,1", min_cosine=-1.0, min_agreement=0.0)
    assert any("outside its input range [0, 1] (from --input-range)" in warning for warning in warnings), warnings


def test_calibration_error_is_a_user_error():
    assert issubclass(CalibrationError, InputError)


def test_labels_json_next_to_the_model_is_read(tmp_path):
    from edgeml_converters.pipeline import _labels_json

    (tmp_path / "labels.json").write_text(json.dumps({"image": {"value_range": [0, 255]}}))
    assert _labels_json(tmp_path / "model.keras")["image"]["value_range"] == [0, 255]
    (tmp_path / "labels.json").write_text("{broken")
    assert _labels_json(tmp_path / "model.keras") is None
