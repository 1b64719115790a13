"""Backends, imported by name on first use so that only the one a model needs must be installed.

Which backends exist, what they run and how they are installed is `edgeml_runtime.formats.BACKENDS`.
A backend module offers `unavailable_reason(backend) -> str|None` and
`open(model_bytes, backend, threads, *, model_path=None)` returning a session with `inputs`, `outputs`
(TensorSpec lists), `run(feeds_by_name) -> outputs_by_name`, `name`, `version` and `concurrent` (whether
one session may be run from several threads at once). `model_path` is the file the bytes came from.
A session may also offer `run_single(array) -> [outputs in order]` for one-input models, fed an array
already checked against the input's spec: Model.run's fast path (edgeml_runtime.fast_run) uses it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import List, Optional

from edgeml_runtime import formats
from edgeml_runtime.errors import BackendNotInstalled, EdgeMLError, ModelLoadError, first_line

__all__ = ["backend_problem", "model_format", "open_session", "resolve_backend"]


def model_format(path: Path, head: bytes) -> str:
    """'tflite' or 'onnx', from the extension, checked against the file's magic bytes."""
    fmt = formats.format_of_path(path)
    if fmt is None:
        fmt = formats.format_of_magic(head)
        if fmt is None:
            suffixes = ", ".join(formats.MODEL_SUFFIXES)
            raise ModelLoadError(f"{path}: unknown model format '{path.suffix}'; edgeml_runtime runs {suffixes} files")
        return fmt
    magic = formats.FORMATS[fmt].magic
    if fmt == "tflite" and head[4:8] not in magic:
        raise ModelLoadError(
            f"{path}: not a valid TFLite model (no 'TFL3' identifier); the file is corrupt or truncated, "
            "re-export it (edgeml convert)"
        )
    return fmt


def resolve_backend(fmt: str, backend: Optional[str]) -> List[formats.Backend]:
    """The backends to try for `fmt`: the one asked for, or every one in preferred order."""
    if backend is None or backend == fmt:
        return [formats.BACKENDS[name] for name in formats.backends_for(fmt)]
    chosen = formats.backend_named(backend)
    if chosen is None or chosen.format != fmt:
        choices = ", ".join(formats.backends_for(fmt))
        raise EdgeMLError(f"backend '{backend}' cannot run {fmt} models; use one of: {choices}")
    return [chosen]


def open_session(model_bytes: bytes, fmt: str, backend: Optional[str], threads: Optional[int], *,
                 model_path: Optional[Path] = None):
    """Create a session for the model with the first backend of `resolve_backend` that is installed.
    `model_path` is where the bytes came from: files a model refers to (ONNX external data) are looked
    for in its folder, never in the current directory."""
    missing = []
    for candidate in resolve_backend(fmt, backend):
        module = importlib.import_module(candidate.session_module)
        problem = module.unavailable_reason(candidate)
        if problem is None:
            return module.open(model_bytes, candidate, threads, model_path=model_path)
        missing.append(problem)
    raise BackendNotInstalled(f"no {fmt} backend available ({'; '.join(missing)}): {formats.install_hint(fmt)}")


def backend_problem(name: str, *, import_it: bool = False) -> Optional[str]:
    """Why backend `name` cannot run here, or None. `import_it` imports it for real, so that a broken
    install (not only a missing one) shows up: what `edgeml doctor` reports."""
    backend = formats.BACKENDS[name]
    module = importlib.import_module(backend.session_module)
    problem = module.unavailable_reason(backend)
    if problem is None and import_it:
        try:
            module.import_backend(backend)
        except Exception as error:  # noqa: BLE001 - any import failure is the finding itself
            problem = f"import failed: {first_line(error)}"
    return problem
