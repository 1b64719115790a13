"""edgeml_converters: Keras/TensorFlow models to TFLite and ONNX, quantized and checked against the original.

TensorFlow, tf2onnx and ONNX Runtime are imported only when a conversion runs.
"""

from edgeml_converters.errors import (
    CalibrationError,
    ConversionError,
    FlexOpsRequired,
    OutputDirError,
    UnsafeModelError,
)
from edgeml_converters.modes import FORMATS, MODES
from edgeml_converters.pipeline import GatesFailed, convert

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "MODES",
    "CalibrationError",
    "ConversionError",
    "FlexOpsRequired",
    "GatesFailed",
    "OutputDirError",
    "UnsafeModelError",
    "__version__",
    "convert",
]
