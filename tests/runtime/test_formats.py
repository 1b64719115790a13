"""The registry of formats and backends is the one place the rest of edgeml reads them from."""

from __future__ import annotations

import importlib

import pytest
from edgeml_runtime import formats
from edgeml_runtime.backends import model_format, resolve_backend
from edgeml_runtime.errors import EdgeMLError, ModelLoadError


def test_every_format_has_backends_that_exist_and_every_backend_a_session_module():
    for fmt in formats.FORMATS.values():
        assert fmt.backends and all(formats.BACKENDS[name].format == fmt.name for name in fmt.backends)
    for backend in formats.BACKENDS.values():
        module = importlib.import_module(backend.session_module)  # importable without its backend installed
        assert callable(module.unavailable_reason) and callable(module.open) and callable(module.import_backend)


def test_suffixes_map_to_runtime_formats():
    assert formats.format_of_path("a/b/model.int8.TFLITE") == "tflite"
    assert formats.format_of_path("model.ort") == "onnx"
    assert formats.format_of_path("model.h5") is None
    assert set(formats.MODEL_SUFFIXES) == {".tflite", ".onnx", ".ort"}


def test_aliases_and_wrong_backends():
    assert [b.name for b in resolve_backend("tflite", None)] == ["litert", "tflite_runtime"]
    assert [b.name for b in resolve_backend("tflite", "ai-edge-litert")] == ["litert"]
    assert [b.name for b in resolve_backend("onnx", "ort")] == ["onnxruntime"]
    with pytest.raises(EdgeMLError, match="backend 'onnxruntime' cannot run tflite models; use one of: litert"):
        resolve_backend("tflite", "onnxruntime")


def test_install_hint_names_the_extra():
    assert formats.install_hint("tflite") == "pip install 'edgeml-runtime[litert]'"
    assert formats.install_hint("onnx") == "pip install 'edgeml-runtime[onnx]'"


def test_magic_decides_for_unknown_suffixes(tmp_path):
    assert model_format(tmp_path / "x.bin", b"\0\0\0\0TFL3") == "tflite"
    with pytest.raises(ModelLoadError, match="unknown model format '.bin'"):
        model_format(tmp_path / "x.bin", b"\0" * 8)
    with pytest.raises(ModelLoadError, match="no 'TFL3' identifier"):
        model_format(tmp_path / "x.tflite", b"\0" * 8)
