"""The converters' error types; each derives from an `edgeml_runtime` error so the CLI maps it to exit 2."""

from __future__ import annotations

from edgeml_runtime import EdgeMLError, InputError, ModelLoadError

__all__ = ["CalibrationError", "ConversionError", "FlexOpsRequired", "OutputDirError", "UnsafeModelError"]


class ConversionError(EdgeMLError):
    """A converter (TFLite, tf2onnx, ONNX Runtime quantization) could not convert the model."""


class FlexOpsRequired(ConversionError):
    """The model needs TensorFlow (Flex) ops that the builtin-only TFLite runtime cannot run."""

    def __init__(self, message: str, ops=()):
        super().__init__(message)
        self.ops = list(ops)

    def __reduce__(self):  # keep `ops` when the error crosses from the conversion process
        return (type(self), (str(self), self.ops))


class UnsafeModelError(ModelLoadError):
    """The model holds Python code (Lambda layers) and the user did not pass --unsafe."""


class CalibrationError(InputError):
    """Calibration or validation data that cannot be used: missing, wrong shape, NaN/Inf."""


class OutputDirError(EdgeMLError):
    """The output directory cannot be used (it is a file, or not writable)."""
