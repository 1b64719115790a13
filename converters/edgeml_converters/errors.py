"""The converters' error types; each derives from an `edgeml_runtime` error so the CLI maps it to an exit
code: 2 for bad input or a failed conversion, 1 for `GatesFailed` (a check that ran and failed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from edgeml_runtime import CheckFailed, EdgeMLError, InputError, ModelLoadError
from edgeml_runtime.formats import MANIFEST_FILE

__all__ = [
    "CalibrationError",
    "ConversionError",
    "FlexOpsRequired",
    "GatesFailed",
    "IncompleteConversion",
    "OnnxConversionError",
    "OutputDirError",
    "UnsafeModelError",
]


class ConversionError(EdgeMLError):
    """A converter (TFLite, tf2onnx, ONNX Runtime quantization) could not convert the model."""


class FlexOpsRequired(ConversionError):
    """The model needs TensorFlow (Flex) ops that the builtin-only TFLite runtime cannot run."""

    def __init__(self, message: str, ops=()):
        super().__init__(message)
        self.ops = list(ops)

    def __reduce__(self):  # keep `ops` when the error crosses from the conversion process
        return (type(self), (str(self), self.ops))


class OnnxConversionError(ConversionError):
    """An ONNX graph that the ONNX → TFLite route cannot convert; the message names the operator (`op`, and the
    node's name in `node`) when the converter (onnx2tf) was on one."""

    def __init__(self, message: str, op: Optional[str] = None, node: Optional[str] = None):
        super().__init__(message)
        self.op = op
        self.node = node

    def __reduce__(self):  # keep `op` and `node` when the error crosses from the conversion process
        return (type(self), (str(self), self.op, self.node))


class IncompleteConversion(ConversionError):
    """One requested output could not be made (TFLM sources for a model TFLM cannot run); the other artifacts
    were made, and `convert()` writes them with their manifest before raising this. `manifest` lists them;
    `output_dir` is where they are once written (None before)."""

    def __init__(self, message: str, manifest: dict, output_dir: Optional[Path] = None):
        super().__init__(message)
        self.manifest = manifest
        self.output_dir = output_dir

    def __reduce__(self):  # keep the manifest when the error crosses from the conversion process
        return (type(self), (self.args[0], self.manifest, self.output_dir))

    def __str__(self) -> str:
        if self.output_dir is None:
            return self.args[0]
        written = [entry["path"] for entry in self.manifest.get("artifacts", [])]
        return f"{self.args[0]}. Written to {self.output_dir}: {', '.join([*written, MANIFEST_FILE])}"


class UnsafeModelError(ModelLoadError):
    """The model holds code that would act on this machine (Lambda layers; SavedModel ops on files, Python or
    the network) and the user did not pass --unsafe."""


class CalibrationError(InputError):
    """Calibration or validation data that cannot be used: missing, wrong shape, NaN/Inf."""


class OutputDirError(EdgeMLError):
    """The output directory cannot be used (it is a file, or not writable)."""


class GatesFailed(CheckFailed):
    """Some artifacts missed their validation gate. Files and manifest are kept; `manifest` has them."""

    def __init__(self, message: str, manifest: dict, output_dir: Path):
        super().__init__(message)
        self.manifest = manifest
        self.output_dir = output_dir
