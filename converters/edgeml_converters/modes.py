"""The quantization modes and output formats: one vocabulary for the API, the CLI and file names."""

from __future__ import annotations

from typing import Iterable, Tuple

from edgeml_runtime import EdgeMLError

__all__ = [
    "FORMATS",
    "MODES",
    "MODES_NEEDING_CALIBRATION",
    "ONNX_MODES",
    "TFLITE_MODES",
    "artifact_name",
    "check_formats",
    "check_modes",
]

MODES = ("fp32", "fp16", "dynamic", "int8", "int16x8")
TFLITE_MODES = MODES
ONNX_MODES = ("fp32", "fp16", "dynamic", "int8")  # ONNX Runtime has no int16-activation kernels
MODES_NEEDING_CALIBRATION = ("int8", "int16x8")
# "ort" is the ONNX Runtime Mobile flat-buffer form of each ONNX artifact.
FORMATS = ("tflite", "onnx", "ort")
EXTENSIONS = {"tflite": ".tflite", "onnx": ".onnx", "ort": ".ort"}


def artifact_name(fmt: str, mode: str) -> str:
    """File name of one artifact, e.g. `model.int8.tflite`."""
    return f"model.{mode}{EXTENSIONS[fmt]}"


def check_modes(modes: Iterable[str]) -> Tuple[str, ...]:
    """The requested modes in canonical order, without duplicates; unknown names are a user error."""
    requested = [mode.strip().lower() for mode in modes if mode.strip()]
    unknown = [mode for mode in requested if mode not in MODES]
    if unknown:
        raise EdgeMLError(f"unknown quantization mode(s) {unknown}; choose from {', '.join(MODES)}")
    if not requested:
        raise EdgeMLError(f"no quantization mode given; choose from {', '.join(MODES)}")
    return tuple(mode for mode in MODES if mode in requested)


def check_formats(formats: Iterable[str]) -> Tuple[str, ...]:
    """The requested formats in canonical order; unknown names are a user error."""
    requested = [fmt.strip().lower() for fmt in formats if fmt.strip()]
    unknown = [fmt for fmt in requested if fmt not in FORMATS]
    if unknown:
        raise EdgeMLError(f"unknown output format(s) {unknown}; choose from {', '.join(FORMATS)}")
    if not requested:
        raise EdgeMLError(f"no output format given; choose from {', '.join(FORMATS)}")
    return tuple(fmt for fmt in FORMATS if fmt in requested)
