"""Backends, imported by name on first use so that only the one a model needs must be installed.

A backend session offers `inputs`, `outputs` (TensorSpec lists), `run(feeds_by_name) -> outputs_by_name`,
`name`, `version` and `concurrent` (whether one session may be run from several threads at once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from edgeml_runtime.errors import EdgeMLError, ModelLoadError

__all__ = ["BACKENDS_BY_FORMAT", "model_format", "open_session", "resolve_backend"]

# Preferred order per format. `tensorflow.lite` is deliberately absent: the runtime never imports TF.
BACKENDS_BY_FORMAT = {"tflite": ("litert", "tflite_runtime"), "onnx": ("onnxruntime",)}
BACKEND_ALIASES = {"ai_edge_litert": "litert", "ai-edge-litert": "litert", "tflite-runtime": "tflite_runtime",
                   "ort": "onnxruntime", "onnx": "onnxruntime"}
EXTENSIONS = {".tflite": "tflite", ".onnx": "onnx", ".ort": "onnx"}


def model_format(path: Path, head: bytes) -> str:
    """'tflite' or 'onnx', from the extension, checked against the file's magic bytes."""
    magic = head[4:8]
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        if magic == b"TFL3":
            return "tflite"
        if magic == b"ORTM":
            return "onnx"
        raise ModelLoadError(
            f"{path}: unknown model format '{path.suffix}'; edgeml_runtime runs .tflite, .onnx and .ort files"
        )
    if fmt == "tflite" and magic != b"TFL3":
        raise ModelLoadError(
            f"{path}: not a valid TFLite model (no 'TFL3' identifier); the file is corrupt or truncated, "
            "re-export it (edgeml convert)"
        )
    return fmt


def resolve_backend(fmt: str, backend: Optional[str]) -> list:
    """The backends to try for `fmt`: the one asked for, or every one in preferred order."""
    if backend is None or backend == fmt:
        return list(BACKENDS_BY_FORMAT[fmt])
    name = BACKEND_ALIASES.get(backend, backend)
    if name not in BACKENDS_BY_FORMAT[fmt]:
        choices = ", ".join(BACKENDS_BY_FORMAT[fmt])
        raise EdgeMLError(f"backend '{backend}' cannot run {fmt} models; use one of: {choices}")
    return [name]


def open_session(model_bytes: bytes, fmt: str, backend: Optional[str], threads: Optional[int]):
    """Create a session for the model with the first backend of `resolve_backend` that is installed."""
    from edgeml_runtime.backends import litert, onnxrt

    modules = {"litert": litert, "tflite_runtime": litert, "onnxruntime": onnxrt}
    candidates = resolve_backend(fmt, backend)
    missing = []
    for name in candidates:
        module = modules[name]
        problem = module.unavailable_reason(name)
        if problem is None:
            return module.open(model_bytes, name, threads)
        missing.append(problem)
    raise missing_backend_error(fmt, missing)


def missing_backend_error(fmt: str, problems: list) -> EdgeMLError:
    from edgeml_runtime.errors import BackendNotInstalled

    extra = "litert" if fmt == "tflite" else "onnx"
    reasons = "; ".join(problems)
    return BackendNotInstalled(
        f"no {fmt} backend available ({reasons}): pip install 'edgeml-runtime[{extra}]'"
    )
