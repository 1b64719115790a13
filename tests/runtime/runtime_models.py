"""Shared helpers for the runtime tests (imported by the test modules, which are not a package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
BACKEND_MODULES = {"litert": "ai_edge_litert", "onnxruntime": "onnxruntime"}
FORMAT_BACKEND = {".tflite": "litert", ".onnx": "onnxruntime"}


def backend_installed(name: str) -> bool:
    return importlib.util.find_spec(BACKEND_MODULES[name]) is not None


def needs_backend_for(filename: str):
    backend = FORMAT_BACKEND[Path(filename).suffix]
    return pytest.mark.skipif(not backend_installed(backend), reason=f"{backend} not installed")


def model_params(*filenames):
    """Parametrize over model files, skipping those whose backend is missing."""
    return pytest.mark.parametrize(
        "model_file", [pytest.param(name, marks=needs_backend_for(name), id=name) for name in filenames]
    )
