"""SavedModel -> .tflite in each quantization mode, with the TFLite converter.

Builtin ops only unless `allow_flex`: a model that needs TensorFlow (Flex) ops fails here with the op
names, because the slim runtimes (LiteRT, tflite-runtime) on a device cannot run them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional

from edgeml_runtime.progress import ProgressCallback, report

from edgeml_converters.calibration import Dataset
from edgeml_converters.errors import ConversionError, FlexOpsRequired
from edgeml_converters.modes import Mode
from edgeml_converters.tensorflow_env import import_tensorflow

__all__ = ["export_tflite"]


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
