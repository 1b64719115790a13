"""pytest helpers shared by the test directories: skips that say why, and parametrisation over the
committed tiny models.

    @model_params("mlp_int8.tflite", "mlp_fp32.onnx")      # `model_file`, skipped where its backend is missing
    def test_x(data_dir, model_file): ...

    @needs_backend_for(MLP_INT8, MLP_ONNX)                   # skipped without a backend for each file
    require_backend_for(MLP_FP32)                           # the same, inside a fixture
    unavailable("mosquitto is not installed")               # skip here, fail under CI
    require_onnx2tf_env()                                   # the same for `edgeml setup onnx2tf`'s environment

The skips for missing backends are what lets tests/runtime and tests/serving run in the runtime-only
environments, which have one backend each (`make test-runtime-only`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .models import backend_installed

__all__ = ["model_params", "needs_backend_for", "require_backend_for", "require_onnx2tf_env", "unavailable"]


def _missing_backends(models) -> str:
    """'' when every model (a path or a file name) has a backend installed, else why not."""
    missing = sorted({Path(model).suffix for model in models if not backend_installed(model)})
    return f"no backend for {', '.join(missing)} models installed" if missing else ""


def needs_backend_for(*models):
    """Mark: skip unless backends that run all of `models` are installed."""
    reason = _missing_backends(models)
    return pytest.mark.skipif(bool(reason), reason=reason or "backends installed")


def require_backend_for(*models) -> None:
    """Skip the running test (from a fixture or the test itself) unless backends for `models` are installed."""
    reason = _missing_backends(models)
    if reason:
        pytest.skip(reason)


def model_params(*filenames):
    """Parametrize `model_file` over files of tests/runtime/data, skipping those whose backend is missing."""
    return pytest.mark.parametrize(
        "model_file", [pytest.param(name, marks=needs_backend_for(name), id=name) for name in filenames]
    )


def unavailable(reason: str):
    """Skip the running test or fixture because something it needs is not there; under CI (environment
    variable CI set) or with EDGEML_REQUIRE_TOOLS set, fail instead: CI must really run it (.ci/run installs what
    the tests need)."""
    for variable in ("CI", "EDGEML_REQUIRE_TOOLS"):
        if os.environ.get(variable):
            pytest.fail(f"{reason} ({variable} is set: this must not be skipped)", pytrace=False)
    pytest.skip(reason)


def require_onnx2tf_env() -> None:
    """Skip (fail under CI) unless the onnx2tf tool environment is built (`make onnx2tf-env`)."""
    from edgeml_converters import onnx2tf_env

    problem = onnx2tf_env.problem()
    if problem:
        unavailable(problem)
