"""`convert()`: load, convert to every requested format and mode, validate, write the manifest."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
from edgeml_runtime import CheckFailed, ModelLoadError

from edgeml_converters import calibration as data_sets
from edgeml_converters.errors import CalibrationError
from edgeml_converters.manifest import artifact_entry, manifest_dict, write_json
from edgeml_converters.modes import MODES_NEEDING_CALIBRATION, ONNX_MODES, artifact_name, check_formats, check_modes
from edgeml_converters.output_dir import default_output_dir, publish, remove_staging, start_staging
from edgeml_converters.validation import Gate, gates_with_overrides, run_batches

__all__ = ["GatesFailed", "build_artifacts", "convert"]

Progress = Optional[Callable[[str], None]]


class GatesFailed(CheckFailed):
    """Some artifacts missed their validation gate. Files and manifest are kept; `manifest` has them."""

    def __init__(self, message: str, manifest: dict, output_dir: Path):
        super().__init__(message)
        self.manifest = manifest
        self.output_dir = output_dir


def convert(
    source,
    output_dir=None,
    *,
    formats=("tflite", "onnx"),
    modes=("fp32",),
    calibration=None,
    calibration_samples: int = 300,
    validate_data=None,
    float_io: bool = False,
    opset: Optional[int] = None,
    allow_flex: bool = False,
    unsafe: bool = False,
    progress: Progress = None,
    fp32_tolerance: Optional[float] = None,
    min_cosine: Optional[float] = None,
    min_agreement: Optional[float] = None,
    isolate: bool = True,
) -> dict:
    """Convert `source` (.keras, .h5 or SavedModel dir) and return the manifest (also written to
    `output_dir/manifest.json`). Artifacts that miss their validation gate are kept, marked
    `passed: false`, and a `GatesFailed` (a CheckFailed) is raised after everything is written.

    `isolate` runs the conversion in a child process (survives converter crashes); `isolate=False`
    converts in this process, which is faster to start when TensorFlow is already imported.
    """
    source_path = Path(source).expanduser().resolve()
    if not source_path.exists():
        raise ModelLoadError(f"model not found: {source}")
    formats, modes = check_formats(formats), check_modes(modes)
    calibration, note = _calibration_choice(calibration, modes, source_path)
    if progress and note:
        progress(note)
    if calibration_samples < 1:
        raise CalibrationError("--calibration-samples must be at least 1")
    out = Path(output_dir).expanduser().resolve() if output_dir else default_output_dir(source_path)
    staging = start_staging(out)
    request = {
        "source_path": source_path, "staging": staging, "formats": formats, "modes": modes,
        "calibration": calibration, "calibration_samples": calibration_samples, "validate_data": validate_data,
        "float_io": float_io, "opset": opset, "allow_flex": allow_flex, "unsafe": unsafe,
        "gates": gates_with_overrides(fp32_tolerance, min_cosine, min_agreement),
    }
    try:
        if isolate:
            from edgeml_converters.isolation import run_isolated

            manifest = run_isolated(build_artifacts, request, progress)
        else:
            manifest = build_artifacts(**request, progress=progress)
        publish(staging, out)
    finally:
        remove_staging(staging)
    _raise_for_failed_gates(manifest, out)
    return manifest


def _calibration_choice(calibration, modes, source_path: Path):
    """The calibration data to use, and a note to show when it was found next to the model."""
    if calibration is not None:
        return calibration, None
    found = data_sets.auto_calibration_file(source_path)
    if found is not None:
        return found, f"using calibration data found next to the model: {found}"
    needing = [mode for mode in modes if mode in MODES_NEEDING_CALIBRATION]
    if needing:
        raise CalibrationError(
            f"{'/'.join(needing)} quantization needs representative data: a few hundred real inputs the "
            "converter runs to measure each layer's value range. Pass --calibration PATH (.npy, .npz, a "
            "folder of images or a .csv), or --calibration synthetic to use random inputs (less accurate)"
        )
    return None, None


def _raise_for_failed_gates(manifest: dict, out: Path) -> None:
    # Flex artifacts cannot be validated here; the user allowed them explicitly (--allow-flex) and was
    # warned, so they are marked `passed: false` with the reason but do not fail the run.
    failed = [entry for entry in manifest["artifacts"]
              if not entry["validation"]["passed"] and "error" not in entry["validation"]]
    if not failed:
        return
    details = "; ".join(
        f"{entry['path']} (cosine {entry['validation']['cosine']:.4f}, top-1 "
        f"{_percent(entry['validation']['top1_agreement'])}, decisive "
        f"{_percent(entry['validation'].get('decisive_top1_agreement'))}, needs {entry['validation']['gate']})"
        for entry in failed
    )
    raise GatesFailed(
        f"{len(failed)} artifact(s) failed validation: {details}. Files and manifest kept in {out} for "
        "inspection; loosen the gates with --min-cosine / --min-agreement / --fp32-tolerance if acceptable",
        manifest, out,
    )


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


# --- the conversion itself (runs in the child process when isolated) ---------------------------------


def build_artifacts(
    *, source_path: Path, staging: Path, formats, modes, calibration, calibration_samples: int,
    validate_data, float_io: bool, opset, allow_flex: bool, unsafe: bool, gates: Dict[str, Gate],
    progress: Progress = None,
) -> dict:
    """Convert into `staging` and write its manifest there; returns the manifest."""
    say = progress or (lambda message: None)
    say(f"loading {source_path.name}")
    from edgeml_converters.loading import load_source

    source = load_source(source_path, unsafe=unsafe)
    try:
        for note in source.notes:
            say(note)
        calibration_set, validation_set, calibration_info = _data_sets(
            source, modes, calibration, calibration_samples, validate_data
        )
        say(f"running the original model on {validation_set.samples} validation samples")
        reference = run_batches(source.predict, source.inputs[0].shape[0], validation_set)
        context = _Context(source, staging, validation_set, reference, gates, calibration_set, say,
                           synthetic=validation_set.source.startswith("synthetic"))
        artifacts = []
        if "tflite" in formats:
            artifacts += _tflite_artifacts(context, modes, float_io, allow_flex)
        if "onnx" in formats or "ort" in formats:
            artifacts += _onnx_artifacts(context, modes, formats, opset)
        manifest = manifest_dict(source, artifacts, calibration_info, _copy_labels(source_path, staging))
        write_json(staging / "manifest.json", manifest)
        return manifest
    finally:
        source.cleanup()


class _Context:
    """What every artifact's conversion and validation needs."""

    def __init__(self, source, staging, validation_set, reference, gates, calibration_set, say, synthetic):
        self.source, self.staging, self.validation_set = source, staging, validation_set
        self.reference, self.gates, self.calibration_set = reference, gates, calibration_set
        self.say, self.synthetic = say, synthetic

    def entry(self, path: Path, fmt: str, mode: str, extra=None) -> dict:
        """Validate the artifact at `path` against the original and describe it for the manifest."""
        from edgeml_converters.validation import not_runnable, validate

        self.say(f"validating {path.name}")
        if extra and extra.get("flex_ops"):
            # The slim runtime cannot run Flex ops (and TF's own interpreter no longer links the Flex
            # delegate), so this artifact cannot be checked here: say so instead of guessing.
            reason = f"not validated: needs Flex ops {', '.join(extra['flex_ops'])}, which LiteRT cannot run"
            result = not_runnable(self.validation_set, reason)
            return artifact_entry(self.staging, path, fmt, mode, _tensorflow_lite_specs(path), result, extra)
        result = validate(path, self.reference, self.validation_set, self.gates[mode], synthetic=self.synthetic)
        return artifact_entry(self.staging, path, fmt, mode, _runtime_model(path), result, extra)


def _data_sets(source, modes, calibration, calibration_samples: int, validate_data):
    """(calibration set or None, validation set, manifest `calibration` entry or None)."""
    needs_calibration = any(mode in MODES_NEEDING_CALIBRATION for mode in modes)
    calibration_set = held_back = None
    if isinstance(calibration, str) and calibration == "synthetic":
        calibration_set = data_sets.synthetic(source.inputs, calibration_samples)
    elif calibration is not None:
        data = data_sets.load_data(calibration, source.inputs, purpose="calibration")
        calibration_set, held_back = data_sets.split_for_validation(data, calibration_samples)
    if validate_data is not None:
        validation_set = data_sets.load_data(validate_data, source.inputs, purpose="validation", limit=1000)
    elif held_back is not None:
        validation_set = held_back
    else:
        validation_set = data_sets.synthetic(source.inputs, seed=1)  # different samples than synthetic calibration
    if not needs_calibration:
        return None, validation_set, None
    return calibration_set, validation_set, {"source": calibration_set.source, "samples": calibration_set.samples}


def _tflite_artifacts(context: _Context, modes, float_io: bool, allow_flex: bool) -> List[dict]:
    from edgeml_converters.tflite_export import export_tflite

    entries = []
    for mode in modes:
        path = context.staging / artifact_name("tflite", mode)
        context.say(f"converting to TFLite {mode}")
        flex_ops = export_tflite(
            context.source.saved_model_dir, context.source.signature_key, mode, path,
            calibration=context.calibration_set, float_io=float_io, allow_flex=allow_flex, progress=context.say,
        )
        if flex_ops:
            context.say(f"warning: {path.name} needs Flex ops {', '.join(flex_ops)}; LiteRT and "
                        "tflite-runtime on a device cannot run it (it needs TensorFlow's Flex delegate)")
        entries.append(context.entry(path, "tflite", mode, {"flex_ops": flex_ops} if flex_ops else None))
    return entries


def _onnx_artifacts(context: _Context, modes, formats, opset) -> List[dict]:
    from edgeml_converters import onnx_export, onnx_quantize

    entries = []
    with tempfile.TemporaryDirectory(prefix="edgeml-onnx-") as scratch:
        base = Path(scratch) / "model.fp32.onnx"
        context.say("converting to ONNX (tf2onnx)")
        used_opset = onnx_export.export_onnx(context.source.saved_model_dir, context.source.signature_key, base,
                                             opset=opset, frozen_graph=context.source.frozen_graph)
        for mode in modes:
            if mode not in ONNX_MODES:
                context.say(f"note: {mode} is TFLite-only (ONNX Runtime has no int16-activation kernels); "
                            "no ONNX file for it")
                continue
            onnx_path = (context.staging if "onnx" in formats else Path(scratch)) / artifact_name("onnx", mode)
            context.say(f"making ONNX {mode}")
            if mode == "fp32":
                shutil.copyfile(base, onnx_path)
            elif mode == "fp16":
                onnx_export.to_fp16(base, onnx_path)
            elif mode == "dynamic":
                onnx_quantize.quantize_dynamic_int8(base, onnx_path)
            else:
                for note in onnx_quantize.quantize_static_int8(base, onnx_path, context.calibration_set,
                                                               progress=context.say):
                    context.say(note)
            extra = {"opset": used_opset}
            if "onnx" in formats:
                entries.append(context.entry(onnx_path, "onnx", mode, extra))
            if "ort" in formats:
                ort_path = context.staging / artifact_name("ort", mode)
                context.say(f"making {ort_path.name} (ONNX Runtime Mobile)")
                onnx_export.to_ort(onnx_path, ort_path)
                entries.append(context.entry(ort_path, "onnx", mode, extra))
    return entries


def _copy_labels(source_path: Path, staging: Path) -> Optional[dict]:
    """`labels.json` from `edgeml train` travels with the artifacts (the on-device Predictor reads it)."""
    folder = source_path if source_path.is_dir() else source_path.parent
    labels = folder / "labels.json"
    if not labels.is_file():
        return None
    shutil.copyfile(labels, staging / "labels.json")
    return {"labels": "labels.json"}


def _runtime_model(path: Path):
    import edgeml_runtime

    return edgeml_runtime.load(path)


def _tensorflow_lite_specs(path: Path):
    """Input/output specs of a .tflite the slim runtime cannot load (Flex ops), via tf.lite."""
    from edgeml_runtime.specs import Quantization, TensorSpec

    from edgeml_converters.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    interpreter = tf.lite.Interpreter(model_content=path.read_bytes())

    def spec(details):
        scale, zero_point = details["quantization"]
        shape = tuple(None if d < 0 else int(d) for d in details["shape_signature"])
        quantization = Quantization(float(scale), int(zero_point)) if scale else None
        return TensorSpec(details["name"], shape, np.dtype(details["dtype"]).name, quantization)

    class Specs:
        inputs = [spec(d) for d in interpreter.get_input_details()]
        outputs = [spec(d) for d in interpreter.get_output_details()]

    return Specs
