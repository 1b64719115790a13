"""Which data a conversion calibrates, validates and evaluates on, each mapped into the model's input range.

    plan = plan_data(source, options, labels=labels_json, model_folder=folder, progress=progress)
    plan.calibration, plan.validation, plan.evaluation     # Datasets (calibration None when no mode needs it)
    plan.manifest_entry()                                  # the manifest's `calibration` object

The input range (see `input_range`) decides how an image folder's pixels are scaled, where synthetic inputs are
drawn, and which data deserve a warning (calibration data outside the declared range, validation data far
outside the calibration data's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

import numpy as np
from edgeml_runtime.progress import ProgressCallback, report

from edgeml_converters import calibration as data_sets
from edgeml_converters.calibration import Dataset, evenly
from edgeml_converters.errors import CalibrationError
from edgeml_converters.input_range import (
    FLAG,
    FROM_DATA,
    InputRange,
    declared_ranges,
    hull,
    map_pixels,
    range_notice,
    synthetic_in_range,
    widely_outside,
)

__all__ = ["EVAL_FILE", "DataPlan", "Evaluation", "plan_data"]

EVAL_FILE = "test.npz"  # what `edgeml train` writes next to model.keras: held-out inputs `x` and labels `y`
LABEL_KEYS = ("y", "labels", "label", "target")
MAX_EVAL_SAMPLES = 2000
SYNTHETIC_VALIDATION_SAMPLES = 64
MORE_SAMPLES_FACTOR = 4  # the repair's "more calibration samples": up to this many times --calibration-samples


@dataclass
class Evaluation:
    """Labelled (or unlabelled) held-out data the accuracy budget is measured on."""

    data: Dataset
    labels: Optional[np.ndarray]  # class index per sample, or None (then agreement with the original is the measure)
    source: str


@dataclass
class DataPlan:
    calibration: Optional[Dataset]
    validation: Dataset
    ranges: Dict[str, InputRange]
    preprocessing: Dict[str, str] = field(default_factory=dict)
    synthetic_calibration: bool = False
    synthetic_validation: bool = False
    spare: Optional[Dataset] = None  # calibration-side samples beyond those used (not the held-back ones)
    evaluation: Optional[Evaluation] = None
    needs_calibration: bool = False

    def manifest_entry(self) -> Optional[dict]:
        if not self.needs_calibration or self.calibration is None:
            return None
        entry = {"source": self.calibration.source, "samples": self.calibration.samples,
                 "input_range": {name: value.to_dict() for name, value in self.ranges.items()},
                 "preprocessing": dict(self.preprocessing)}
        if self.synthetic_calibration:
            entry["synthetic"] = True
            entry["validation_synthetic"] = self.synthetic_validation
        return entry

    def more_calibration(self, samples: int) -> Optional[Dataset]:
        """Up to MORE_SAMPLES_FACTOR x `samples` calibration samples (none held back for validation), when there are
        more than the calibration set has; else None."""
        if self.spare is None or self.calibration is None or self.spare.samples <= self.calibration.samples:
            return None
        wanted = min(self.spare.samples, MORE_SAMPLES_FACTOR * samples)
        return self.spare.take(evenly(self.spare.samples, wanted), f"{self.spare.source} ({wanted} samples)")


def plan_data(source, options, *, labels: Optional[dict] = None, model_folder: Optional[Path] = None,
              progress: ProgressCallback = None) -> DataPlan:
    """The data sets of one conversion, with the warnings about them sent to `progress`."""
    inputs = source.inputs
    ranges = declared_ranges(options.input_range, inputs, labels=labels, model=source.keras_model)
    plan = DataPlan(None, None, ranges, needs_calibration=options.needs_calibration)  # type: ignore[arg-type]
    held_back = None
    calibration = options.calibration
    if isinstance(calibration, str) and calibration == "synthetic":
        arrays, text = synthetic_in_range(inputs, ranges, options.calibration_samples, seed=0)
        plan.calibration, plan.synthetic_calibration = Dataset(arrays, text), True
        plan.preprocessing = {info.name: f"synthetic: uniform random values in {_range_text(ranges, info.name)}"
                              for info in inputs}
        _warn_synthetic(ranges, inputs, progress, options.needs_calibration)
    elif calibration is not None:
        data = data_sets.load_data(calibration, inputs, purpose="calibration")
        data, plan.preprocessing = _into_range(data, calibration, ranges, "calibration")
        for name, seen in hull(data.arrays).items():
            if name not in ranges:
                ranges[name] = InputRange(seen[0], seen[1], FROM_DATA)
            else:
                _warn(progress, range_notice(name, ranges[name], seen, "calibration"))
        _, held = data_sets.split_indices(data.samples, options.calibration_samples)
        plan.calibration, held_back = data_sets.split_for_validation(data, options.calibration_samples)
        if held is not None:
            plan.spare = data.take(np.setdiff1d(np.arange(data.samples), held))
    plan.validation, plan.synthetic_validation = _validation_set(options, inputs, ranges, held_back)
    if options.validate_data is not None:
        _check_against_calibration(plan, progress)
    if options.needs_calibration:
        plan.evaluation = _evaluation(options, inputs, model_folder, ranges, progress)
    return plan


def _validation_set(options, inputs, ranges, held_back):
    if options.validate_data is not None:
        data = data_sets.load_data(options.validate_data, inputs, purpose="validation", limit=1000)
        data, _ = _into_range(data, options.validate_data, ranges, "validation")
        return data, False
    if held_back is not None:
        return held_back, False
    # Different samples than synthetic calibration (seed 1), inside the same ranges.
    arrays, text = synthetic_in_range(inputs, ranges, SYNTHETIC_VALIDATION_SAMPLES, seed=1)
    return Dataset(arrays, text), True


def _into_range(data: Dataset, given, ranges: Dict[str, InputRange], purpose: str):
    """Image-folder pixels mapped into the declared range (an error naming --input-range when none is known);
    arrays are the model's input already and stay as they are. Returns (data, how each input was prepared)."""
    if not _is_image_folder(given):
        return data, {name: "none: the arrays are the model's input as given" for name in data.arrays}
    name = next(iter(data.arrays))
    target = ranges.get(name)
    if target is None:
        raise CalibrationError(
            f"{purpose} images in {given} hold pixels 0..255, and nothing says which range the model's input '{name}' "
            f"expects (no {FLAG}, no labels.json with the range, no Rescaling layer at the model's input): pass "
            f"{FLAG} 0,1 (pixels / 255), {FLAG} -1,1 (pixels / 127.5 - 1) or {FLAG} 0,255 (pixels as they are)"
        )
    mapped, how = map_pixels(data.arrays[name], target)
    return Dataset({name: mapped.astype(data.arrays[name].dtype)}, data.source), {
        name: f"{how}, for the input range {target.describe()} from {target.origin}"}


def _check_against_calibration(plan: DataPlan, progress: ProgressCallback) -> None:
    """Validation data far outside what calibration saw: the int8 model clips them, so its figures mean little."""
    if plan.calibration is None:
        return
    calibrated = hull(plan.calibration.arrays)
    for name, seen in hull(plan.validation.arrays).items():
        if name in calibrated and widely_outside(calibrated[name], seen):
            low, high = calibrated[name]
            _warn(progress, f"validation data for input '{name}' lie in [{seen[0]:.4g}, {seen[1]:.4g}], far outside "
                            f"the calibration data's [{low:.4g}, {high:.4g}]: quantized models clip what calibration "
                            "did not see; scale both the same way (as the model's real inputs)")


def _evaluation(options, inputs, model_folder: Optional[Path], ranges, progress) -> Optional[Evaluation]:
    """--eval-data, else the trainer's test.npz next to the model: inputs and, when present, labels `y`."""
    if options.eval_data is not None:
        return _read_evaluation_set(options.eval_data, inputs, ranges, progress)
    found = model_folder / EVAL_FILE if model_folder is not None else None
    if found is None or not found.is_file():
        return None
    try:
        evaluation = _read_evaluation_set(found, inputs, ranges, progress)
    except CalibrationError as error:  # someone else's test.npz: not this model's data, so not an error either
        report(progress, "validate", f"not using {found} as evaluation data: {error}", level="note")
        return None
    report(progress, "validate", f"using evaluation data found next to the model: {found}", level="note")
    return evaluation


def _read_evaluation_set(given, inputs, ranges, progress) -> Evaluation:
    arrays, labels, source = _read_evaluation(given)
    data = data_sets.load_data(arrays, inputs, purpose="evaluation")
    if data.samples > MAX_EVAL_SAMPLES:
        chosen = evenly(data.samples, MAX_EVAL_SAMPLES)
        data = data.take(chosen)
        labels = None if labels is None else labels[chosen]
    data = Dataset(data.arrays, source)
    if labels is not None and len(labels) != data.samples:
        raise CalibrationError(f"evaluation data {source}: {len(labels)} labels for {data.samples} samples")
    for name, seen in hull(data.arrays).items():
        if name in ranges:
            _warn(progress, range_notice(name, ranges[name], seen, "evaluation"))
    return Evaluation(data, labels, f"{source} ({data.samples} samples{', labelled' if labels is not None else ''})")


def _read_evaluation(given):
    """(arrays: one array or a dict by input name, class labels or None, source text)."""
    if isinstance(given, np.ndarray):
        return given, None, "array"
    if isinstance(given, dict):
        arrays = dict(given)
        source = "arrays"
    else:
        path = Path(given)
        if not path.exists():
            raise CalibrationError(f"evaluation data not found: {given}")
        if not path.is_file() or path.suffix.lower() not in (".npz", ".npy"):
            raise CalibrationError(f"evaluation data {given}: expected an .npz with inputs (x, or arrays by input "
                                   "name) and labels y, or an .npy of inputs")
        from edgeml_runtime import InputError
        from edgeml_runtime.arrayfiles import read_array_file

        try:
            loaded = read_array_file(path)
        except InputError as error:
            raise CalibrationError(f"cannot use evaluation data {error}") from None
        if isinstance(loaded, np.ndarray):
            return loaded, None, str(path)
        arrays, source = dict(loaded), str(path)
    label_key = next((key for key in LABEL_KEYS if key in arrays), None)
    labels = _class_labels(arrays.pop(label_key)) if label_key else None
    if len(arrays) == 1:
        arrays = next(iter(arrays.values()))
    elif "x" in arrays:
        arrays = arrays["x"]
    return arrays, labels, source


def _class_labels(values: np.ndarray) -> Optional[np.ndarray]:
    """Class indices from integer labels or one-hot rows; None for real-valued targets (regression)."""
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] > 1:
        return values.argmax(axis=1)
    values = values.reshape(len(values), -1)[:, 0] if values.ndim > 1 else values
    if values.dtype.kind in "iub" or (values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0)):
        return values.astype(np.int64)
    return None


def _warn_synthetic(ranges, inputs, progress, calibrating: bool) -> None:
    missing = [info.name for info in inputs if info.name not in ranges]
    if missing:
        report(progress, "calibrate",
               f"synthetic calibration: random inputs in [0, 1) for {', '.join(missing)}, because no input range is "
               f"known (no {FLAG}, no labels.json, no Rescaling layer); a model expecting another range gets a wrong "
               "int8 file that still passes its own (equally synthetic) validation. Pass real data with "
               f"--calibration PATH, or at least {FLAG} LO,HI", level="warning")
    elif calibrating:
        described = ", ".join(f"'{name}' {value.describe()} (from {value.origin})" for name, value in ranges.items())
        report(progress, "calibrate",
               f"synthetic calibration: random inputs inside the input range {described}; calibration and "
               "validation are only as good as random data (real inputs: --calibration PATH)", level="warning")


def _range_text(ranges: Dict[str, InputRange], name: str) -> str:
    value = ranges.get(name)
    return f"{value.describe()} (from {value.origin})" if value else "[0, 1) (no input range known)"


def _is_image_folder(given) -> bool:
    return isinstance(given, (str, Path)) and Path(given).is_dir()


def _warn(progress: ProgressCallback, message: Optional[str]) -> None:
    if message:
        report(progress, "calibrate", message, level="warning")
