"""The runtime stays slim: no TensorFlow/Keras/ONNX imports, Python 3.9 syntax, missing backends explained."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import edgeml_runtime
import pytest

from tests.support.models import DATA, backend_installed

FORBIDDEN = ("tensorflow", "keras", "tf_keras", "onnx", "tf2onnx")
RUNTIME_SOURCE = Path(edgeml_runtime.__file__).parent


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300)


def test_loading_and_running_every_format_imports_no_heavy_framework():
    models = [str(DATA / name) for name in ("mlp_fp32.tflite", "mlp_int8.tflite", "mlp_fp32.onnx")
              if backend_installed(name)]
    result = run_python(
        f"""
        import sys, edgeml_runtime as er
        for path in {models!r}:
            model = er.load(path)
            model.run(er.synthetic_inputs(model.inputs))
            er.benchmark(model, runs=3, min_seconds=0, warmup_seconds=0)
        from edgeml_runtime import cli  # the device CLI too
        heavy = sorted(name for name in sys.modules if name.split('.')[0] in {FORBIDDEN!r})
        print(heavy)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.skipif(not os.environ.get("EDGEML_EXPECT_PYTHON"),
                    reason="EDGEML_EXPECT_PYTHON not set (`make test-runtime-only` sets it for its Python 3.9 run)")
def test_runs_on_the_expected_python():
    # `make test-runtime-only` also runs these tests on CPython 3.9: prove it is really that Python.
    expected = tuple(int(part) for part in os.environ["EDGEML_EXPECT_PYTHON"].split("."))
    assert sys.version_info[:2] == expected, f"running on Python {sys.version.split()[0]}"


def test_runtime_source_parses_as_python_39():
    for source in RUNTIME_SOURCE.rglob("*.py"):
        ast.parse(source.read_text(), filename=str(source), feature_version=(3, 9))


def test_missing_tflite_backend_names_the_pip_command():
    # Blocking an import through sys.modules is how Python itself spells "not installed" for find_spec.
    result = run_python(
        f"""
        import sys
        sys.modules["ai_edge_litert"] = None
        sys.modules["tflite_runtime"] = None
        import edgeml_runtime as er
        try:
            er.load({str(DATA / "mlp_fp32.tflite")!r})
        except er.BackendNotInstalled as error:
            print(error)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "no tflite backend available" in result.stdout
    assert "pip install 'edgeml-runtime[litert]'" in result.stdout


def test_missing_onnx_backend_names_the_pip_command():
    result = run_python(
        f"""
        import sys
        sys.modules["onnxruntime"] = None
        import edgeml_runtime as er
        try:
            er.load({str(DATA / "mlp_fp32.onnx")!r})
        except er.BackendNotInstalled as error:
            print(error)
        """
    )
    assert "pip install 'edgeml-runtime[onnx]'" in result.stdout


def test_cli_without_backend_exits_2_with_the_fix():
    result = run_python(
        f"""
        import sys
        sys.modules["onnxruntime"] = None
        from edgeml_runtime.cli import main
        sys.exit(main(["info", {str(DATA / "mlp_fp32.onnx")!r}]))
        """
    )
    assert result.returncode == 2
    assert "pip install 'edgeml-runtime[onnx]'" in result.stderr
    assert "Traceback" not in result.stderr
