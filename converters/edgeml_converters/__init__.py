"""edgeml_converters: Keras/TensorFlow models to TFLite and ONNX, quantized and checked against the original,
and TensorFlow Lite Micro sources for microcontrollers.

TensorFlow, tf2onnx, ONNX Runtime and tflite-micro are imported only when a conversion runs.

    from edgeml_converters import ConvertOptions, Mode, convert

    manifest = convert("vww_96.keras", "out", ConvertOptions(modes=(Mode.FP32, Mode.INT8), calibration="x.npy"),
                       progress=print)  # progress: edgeml_runtime.progress.ProgressEvent
    manifest["recommended"]  # the fastest passing artifact, measured on this machine (recommend=False: not measured)
    convert("vww_96.keras", "out", formats=("tflm",), modes=("fp32", "int8"), calibration="x.npy")  # + TFLM sources
    export_tflm("out/vww_96.int8.tflite")  # TFLM sources for an existing int8 .tflite (edgeml-converters[tflm])

Files are named after the source model (Ultralytics' convention): `vww_96.keras` (or `vww_96.h5`, `vww_96.onnx`, a
SavedModel folder `vww_96/`) gives `vww_96.fp32.tflite`, `vww_96.int8.onnx`, ... (`modes.artifact_name`).
"""

from edgeml_converters.errors import (
    CalibrationError,
    ConversionError,
    FlexOpsRequired,
    GatesFailed,
    IncompleteConversion,
    OutputDirError,
    UnsafeModelError,
)
from edgeml_converters.modes import FORMATS, MODES, Mode
from edgeml_converters.options import ConvertOptions
from edgeml_converters.pipeline import convert
from edgeml_converters.tflm import export_tflm

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "MODES",
    "CalibrationError",
    "ConversionError",
    "ConvertOptions",
    "FlexOpsRequired",
    "GatesFailed",
    "IncompleteConversion",
    "Mode",
    "OutputDirError",
    "UnsafeModelError",
    "__version__",
    "convert",
    "export_tflm",
]
