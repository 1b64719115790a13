"""SavedModel -> .tflite in each quantization mode, with the TFLite converter.

Builtin ops only unless `allow_flex`: a model that needs TensorFlow (Flex) ops fails here with the op
names, because the slim runtimes (LiteRT, tflite-runtime) on a device cannot run them.

Full-integer int8 is made in two steps, as the converter itself does: calibration (the float model run on the
representative data, every tensor's range recorded: the slow part) and quantization of that calibrated model (fast).
`calibrate` keeps the first step's result, so `quantize_calibrated` can make variants of the same calibration in
a fraction of a second: ops kept in float (what `--explain` measures and the repair's last rung ships).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional, Sequence

from edgeml_runtime.progress import ProgressCallback, report

from edgeml_converters.calibration import Dataset
from edgeml_converters.errors import ConversionError, FlexOpsRequired
from edgeml_converters.modes import Mode
from edgeml_converters.tensorflow_env import import_tensorflow

__all__ = ["calibrate", "export_tflite", "quantize_calibrated"]


def export_tflite(
    saved_model_dir: Path,
    signature_key: str,
    mode: Mode,
    destination: Path,
    *,
    calibration: Optional[Dataset] = None,
    float_io: bool = False,
    allow_flex: bool = False,
    progress: ProgressCallback = None,
) -> List[str]:
    """Write `destination`; return the Flex ops the model uses (always empty unless allow_flex).
    Calibration reports stage "calibrate" events counting samples (done/total)."""
    mode = Mode(mode)
    if mode is Mode.INT8 and not allow_flex and calibration is not None:
        calibrated = calibrate(saved_model_dir, signature_key, calibration, progress=progress)
        destination.write_bytes(quantize_calibrated(calibrated, float_io=float_io))
        return []
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[signature_key])
    builtins = _configure(converter, tf, mode, calibration, float_io, progress)
    converter.target_spec.supported_ops = [builtins] + ([tf.lite.OpsSet.SELECT_TF_OPS] if allow_flex else [])
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # ConverterError, and ValueError/RuntimeError for unsupported settings
        raise _explain(error, mode) from None
    destination.write_bytes(flatbuffer)
    return _flex_ops_in(flatbuffer) if allow_flex else []


def calibrate(saved_model_dir: Path, signature_key: str, calibration: Dataset, *,
              progress: ProgressCallback = None, label: str = "calibrating TFLite int8") -> bytes:
    """The float model with every tensor's calibrated range recorded (the converter's own first step of int8:
    `_experimental_calibrate_only`, as tf.lite.experimental.QuantizationDebugger uses it)."""
    tf = import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[signature_key])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(calibration, label, progress)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_calibrate_only = True  # noqa: SLF001 - the debugger's documented way to get this step
    try:
        return converter.convert()
    except Exception as error:
        raise _explain(error, Mode.INT8) from None


def quantize_calibrated(calibrated: bytes, *, float_io: bool = False, float_ops: Sequence[str] = ()) -> bytes:
    """int8 from a `calibrate`d model: what the converter makes (int8 weights and activations, int8 inputs and
    outputs unless `float_io`), except that the ops whose output tensors are named in `float_ops` stay in float
    (the converter puts Dequantize/Quantize around them)."""
    tf = import_tensorflow()
    from tensorflow.lite.python.convert import deduplicate_readonly_buffers, mlir_quantize

    io_type = tf.float32 if float_io else tf.int8
    try:
        model = mlir_quantize(calibrated, input_data_type=io_type, output_data_type=io_type,
                              denylisted_nodes=list(float_ops) or None)
        return deduplicate_readonly_buffers(model)  # as the converter does: shared constants stored once
    except Exception as error:
        raise _explain(error, Mode.INT8) from None


def _configure(converter, tf, mode, calibration, float_io, progress):
    """Set the converter up for `mode`; returns the builtin op set to allow."""
    if mode is Mode.FP32:
        return tf.lite.OpsSet.TFLITE_BUILTINS
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode is Mode.FP16:
        converter.target_spec.supported_types = [tf.float16]
        return tf.lite.OpsSet.TFLITE_BUILTINS
    if mode is Mode.DYNAMIC:  # int8 weights, float activations: no calibration data needed
        return tf.lite.OpsSet.TFLITE_BUILTINS
    if calibration is None:
        raise ConversionError(f"TFLite {mode} needs calibration data")
    converter.representative_dataset = _representative(calibration, f"calibrating TFLite {mode}", progress)
    if mode is Mode.INT8:
        io_type, builtins = tf.int8, tf.lite.OpsSet.TFLITE_BUILTINS_INT8
    else:  # int16x8: int16 activations, int8 weights (more accurate than int8 for wide-range activations)
        io_type, builtins = tf.int16, tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
    if not float_io:  # full-integer I/O, what integer-only accelerators and MCUs want
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    return builtins


def _representative(calibration: Dataset, label: str, progress: ProgressCallback):
    def generate():
        total = calibration.samples
        for index, sample in enumerate(calibration.one_by_one(), start=1):
            if index == total or index % 25 == 0:
                report(progress, "calibrate", label, done=index, total=total)
            yield sample  # a dict by input name: matched to the signature's inputs by name, not order

    return generate


def _explain(error: Exception, mode: str) -> ConversionError:
    text = str(error)
    flex = _flex_ops_from_message(text)
    if flex:
        return FlexOpsRequired(
            f"the model needs TensorFlow ops that builtin TFLite cannot run: {', '.join(flex)}; replace them, "
            "or pass --allow-flex (the .tflite then needs the Flex delegate, which LiteRT and tflite-runtime "
            "on a device do not have)",
            flex,
        )
    lines = [line.strip() for line in text.splitlines() if line.strip() and "error:" in line] or [text.strip()]
    return ConversionError(f"TFLite {mode} conversion failed: {lines[0][:400]}")


def _flex_ops_from_message(text: str) -> List[str]:
    """Op names from the converter's 'TF Select ops: Erf, MatrixInverse' line or 'tf.X' op errors."""
    names = set()
    for match in re.finditer(r"TF Select ops: ([^\n]+)", text):
        names.update(part.strip() for part in match.group(1).split(",") if part.strip())
    if not names and "neither a custom op nor a flex op" in text:
        names.update(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text))
    return sorted(names)


def _flex_ops_in(flatbuffer: bytes) -> List[str]:
    """Flex ops appear in the model as custom ops named 'Flex<Op>'."""
    return sorted({match.decode()[4:] for match in re.findall(rb"Flex[A-Z][A-Za-z0-9]+", flatbuffer)})
