"""`ConvertOptions`: everything a conversion can be asked to do, in one typed value.

The `edgeml convert` command builds one from its flags; `convert(source, output_dir, **keywords)` builds
one from the same names. Formats and modes are checked and put in canonical order when the options are
made, so an options object always holds valid values.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from edgeml_runtime import EdgeMLError

from edgeml_converters.errors import CalibrationError
from edgeml_converters.input_range import parse_input_ranges
from edgeml_converters.modes import Mode, check_formats, check_modes
from edgeml_converters.validation import Gate, gates_with_overrides

__all__ = ["DEFAULT_CALIBRATION_SAMPLES", "ConvertOptions"]

DEFAULT_CALIBRATION_SAMPLES = 300


@dataclass(frozen=True)
class ConvertOptions:
    """What to make and how to check it.

    formats: export target names (`edgeml_runtime.formats.TARGETS`: tflite, onnx, ort; and `SOURCE_TARGETS`:
        tflm, TensorFlow Lite Micro sources made from the int8 .tflite, so it needs Mode.INT8 and brings
        "tflite" along: the .tflite is the model the sources embed and the file to inspect or run on Linux).
    modes: quantization modes (`Mode` or their names).
    calibration: representative data for int8/int16x8: a path (.npy, .npz, image folder, .csv), an
        array, a dict by input name, or "synthetic"; None looks for calibration.npz next to the model.
    calibration_samples: how many calibration samples to use (taken evenly).
    validate_data: inputs to validate on (default: held-back calibration samples, else synthetic).
    float_io: keep float inputs/outputs in int8/int16x8 TFLite models.
    opset: ONNX opset (None: the exporter's default).
    allow_flex: allow TensorFlow (Flex) ops in TFLite.
    unsafe: load Keras models with Lambda layers (runs code from the file).
    fp32_tolerance, min_cosine, min_agreement: override the default validation gates (None: default).
    input_range: the range of values the model's inputs expect: "LO,HI", "name=LO,HI" (one per input), (low, high)
        or {name: (low, high)}; several as a list. Image folders are mapped into it and synthetic data drawn from
        it. Empty: labels.json's recorded range, else the model's Rescaling layer, else the calibration data's.
    explain: rank every int8 artifact's layers by how much output error each causes (`validation.layers`).
    max_drop: accuracy budget in points: each int8 artifact must stay within this many points of the original
        (accuracy on labelled evaluation data, else top-1 agreement, cosine for regression); when plain int8
        misses it, the repair ladder runs. None: the validation gate is the budget.
    eval_data: labelled evaluation data (.npz with inputs and `y`); None: test.npz next to the model, if any.
    repair: climb the repair ladder when an int8 artifact misses its budget (False: report the miss only).
    target_machine: the CPU the artifacts are for (`platform.machine()` names: aarch64, armv7l, x86_64), from a
        device profile; it decides target-dependent settings such as ONNX 7-bit weights. None: this host.
    keep_layout: ONNX sources only: the TFLite files take the ONNX model's layout (NCHW from PyTorch) instead of
        TFLite's NHWC (the manifest's `layout` says which each artifact takes).
    recommend: measure every passing artifact on this machine (each thread count, about a second in all) and name
        the fastest in the manifest's `recommended` (ties go to the smaller file); `edgeml select` measures again
        on the device. False: no measurement, no `recommended`.
    """

    formats: Tuple[str, ...] = ("tflite", "onnx")
    modes: Tuple[Mode, ...] = (Mode.FP32,)
    calibration: Any = None
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    validate_data: Any = None
    float_io: bool = False
    opset: Optional[int] = None
    allow_flex: bool = False
    unsafe: bool = False
    fp32_tolerance: Optional[float] = None
    min_cosine: Optional[float] = None
    min_agreement: Optional[float] = None
    input_range: Any = ()
    explain: bool = False
    max_drop: Optional[float] = None
    eval_data: Any = None
    repair: bool = True
    target_machine: Optional[str] = None
    keep_layout: bool = False
    recommend: bool = True

    def __post_init__(self):
        object.__setattr__(self, "formats", check_formats(self.formats))
        object.__setattr__(self, "modes", check_modes(self.modes))
        if "tflm" in self.formats:
            self._check_tflm()
            object.__setattr__(self, "formats", check_formats((*self.formats, "tflite")))
        if self.calibration_samples < 1:
            raise CalibrationError("--calibration-samples must be at least 1")
        object.__setattr__(self, "input_range", parse_input_ranges(self.input_range))
        if (self.explain or self.max_drop is not None) and Mode.INT8 not in self.modes:
            flag = "--explain" if self.explain else "--max-drop"
            raise EdgeMLError(f"{flag} works on full-integer artifacts: add --int8 (or --quantize int8)")
        if self.max_drop is not None and not 0 <= float(self.max_drop) <= 100:
            raise EdgeMLError(f"--max-drop {self.max_drop}: give accuracy points between 0 and 100 (e.g. --max-drop 1)")

    def _check_tflm(self) -> None:
        if Mode.INT8 not in self.modes:
            raise EdgeMLError(
                "--to tflm needs full-integer quantization: add --int8 (or --quantize int8); TensorFlow Lite Micro "
                "runs the int8 model, whose .tflite is made too")
        if self.float_io:
            raise EdgeMLError("--to tflm needs int8 inputs and outputs (the C++ sources embed a full-integer "
                              "model): drop --float-io")

    @property
    def needs_calibration(self) -> bool:
        return any(mode.needs_calibration for mode in self.modes)

    def gates(self) -> Dict[Mode, Gate]:
        """The validation gate of each mode: the defaults with this run's overrides."""
        return gates_with_overrides(self.fp32_tolerance, self.min_cosine, self.min_agreement)

    def replace(self, **changes) -> ConvertOptions:
        return dataclasses.replace(self, **changes)
