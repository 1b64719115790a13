"""The quantization modes and output formats: one vocabulary for the API, the CLI and file names.

`Mode` is a `str` enum, so a plain "int8" is accepted wherever a mode is, and a `Mode` is written as its
value (in file names, JSON and messages). The output formats are the export targets of
`edgeml_runtime.formats.TARGETS` (model files the runtime runs) and `SOURCE_TARGETS` (sources for a firmware
build: `tflm`, made from the int8 .tflite).
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Iterable, Tuple, Union

from edgeml_runtime import EdgeMLError
from edgeml_runtime.formats import SOURCE_TARGETS, TARGETS

__all__ = [
    "FORMATS",
    "MODES",
    "MODES_NEEDING_CALIBRATION",
    "ONNX_MODES",
    "TFLITE_MODES",
    "Mode",
    "artifact_name",
    "artifact_stem",
    "check_formats",
    "check_modes",
]


class Mode(str, Enum):
    """A quantization mode, in canonical order (the order artifacts are made and listed in)."""

    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC = "dynamic"  # int8 weights, float activations
    INT8 = "int8"  # full integer: weights and activations (int8 I/O by default in TFLite)
    INT16X8 = "int16x8"  # int16 activations, int8 weights (TFLite only)

    def __str__(self) -> str:  # "int8", not "Mode.INT8", in f-strings and file names
        return self.value

    @property
    def needs_calibration(self) -> bool:
        """Whether the converter must run representative data to measure activation ranges."""
        return self in MODES_NEEDING_CALIBRATION

    @property
    def in_onnx(self) -> bool:
        """Whether ONNX Runtime can run this mode (it has no int16-activation kernels)."""
        return self in ONNX_MODES


MODES: Tuple[str, ...] = tuple(mode.value for mode in Mode)  # plain names, for messages and old callers
TFLITE_MODES: Tuple[Mode, ...] = tuple(Mode)
ONNX_MODES: Tuple[Mode, ...] = (Mode.FP32, Mode.FP16, Mode.DYNAMIC, Mode.INT8)
MODES_NEEDING_CALIBRATION: Tuple[Mode, ...] = (Mode.INT8, Mode.INT16X8)
# "ort" is the ONNX Runtime Mobile flat-buffer form of each ONNX artifact; "tflm" TensorFlow Lite Micro sources
# around the int8 .tflite (which it brings along).
FORMATS: Tuple[str, ...] = (*TARGETS, *SOURCE_TARGETS)


SOURCE_SUFFIXES = (".keras", ".h5", ".hdf5", ".onnx")
FALLBACK_STEM = "model"


def artifact_name(fmt: str, mode: Union[Mode, str], stem: str) -> str:
    """File name of one artifact, named after its source (see `artifact_stem`), e.g. `vww_96.int8.tflite`."""
    return f"{stem}.{Mode(mode).value}{TARGETS[fmt].suffix}"


def artifact_stem(source) -> str:
    """The source model's name for its artifacts' file names: a file's stem (`vww_96.keras` -> `vww_96`), a SavedModel
    folder's name. Characters other than letters, digits, '.', '_' and '-' become '_' (the name lands in file names,
    shell commands and C++ sources); "model" when nothing is left."""
    path = Path(source)
    name = path.name[: -len(path.suffix)] if path.suffix.lower() in SOURCE_SUFFIXES else path.name
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip("._-")
    return stem or FALLBACK_STEM


def check_modes(modes: Iterable[Union[Mode, str]]) -> Tuple[Mode, ...]:
    """The requested modes in canonical order, without duplicates; unknown names are a user error."""
    requested = [str(mode).strip().lower() for mode in _as_list(modes) if str(mode).strip()]
    unknown = [mode for mode in requested if mode not in MODES]
    if unknown:
        raise EdgeMLError(f"unknown quantization mode(s) {unknown}; choose from {', '.join(MODES)}")
    if not requested:
        raise EdgeMLError(f"no quantization mode given; choose from {', '.join(MODES)}")
    return tuple(mode for mode in Mode if mode.value in requested)


def check_formats(formats: Iterable[str]) -> Tuple[str, ...]:
    """The requested formats in canonical order; unknown names are a user error."""
    requested = [str(fmt).strip().lower() for fmt in _as_list(formats) if str(fmt).strip()]
    unknown = [fmt for fmt in requested if fmt not in FORMATS]
    if unknown:
        raise EdgeMLError(f"unknown output format(s) {unknown}; choose from {', '.join(FORMATS)}")
    if not requested:
        raise EdgeMLError(f"no output format given; choose from {', '.join(FORMATS)}")
    return tuple(fmt for fmt in FORMATS if fmt in requested)


def _as_list(values) -> list:
    """One name ("int8", Mode.INT8) or several; a lone string is one name, not its characters."""
    return [values] if isinstance(values, str) else list(values)
