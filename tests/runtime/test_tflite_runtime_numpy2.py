"""tflite_runtime 2.14 (its last release) is compiled for numpy 1 and breaks under numpy 2.

Installs the real tflite-runtime 2.14 wheel beside this numpy 2 (cached under ~/.cache/edgeml) and
checks that edgeml_runtime explains the problem instead of crashing inside the interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from edgeml_runtime.files import cache_root

from tests.support.marks import unavailable
from tests.support.models import DATA

CACHE = cache_root() / "test-packages" / "tflite-runtime-2.14"


@pytest.fixture(scope="module")
def tflite_runtime_214() -> Path:
    if int(np.__version__.split(".")[0]) < 2:
        pytest.skip("needs numpy 2")
    if not (CACHE / "tflite_runtime").exists():
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(CACHE),
             "tflite-runtime==2.14.0"],
            capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            unavailable(f"tflite-runtime 2.14 is not installable here: {result.stderr[-500:]}")
    return CACHE


def run_with_tflite_runtime(path: Path, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(path))
    # ai_edge_litert blocked so that tflite_runtime is the only TFLite backend left.
    prelude = "import sys\nsys.modules['ai_edge_litert'] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=300)


def test_raw_tflite_runtime_really_breaks_with_numpy_2(tflite_runtime_214):
    result = run_with_tflite_runtime(
        tflite_runtime_214,
        f"""
        from tflite_runtime.interpreter import Interpreter
        Interpreter(model_path={str(DATA / "mlp_fp32.tflite")!r}).allocate_tensors()
        """,
    )
    assert result.returncode != 0  # the failure edgeml_runtime protects users from


def test_edgeml_runtime_explains_instead_of_crashing(tflite_runtime_214):
    result = run_with_tflite_runtime(
        tflite_runtime_214,
        f"""
        import edgeml_runtime as er
        for backend in (None, "tflite_runtime"):
            try:
                er.load({str(DATA / "mlp_fp32.tflite")!r}, backend=backend)
            except er.BackendNotInstalled as error:
                print(error)
        """,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "tflite-runtime 2.14.0 was built for numpy 1.x and crashes with numpy" in line
        assert "use ai-edge-litert" in line
