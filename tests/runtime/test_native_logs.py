"""Native start-up lines kept off stderr (edgeml_runtime.native_logs): LiteRT's "Created TensorFlow Lite
XNNPACK delegate" is not printed by a process that loads and runs a model, unless EDGEML_NATIVE_LOGS=1."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from edgeml_runtime.native_logs import NATIVE_LOGS_ENV, quiet_native_logs

from tests.support.marks import needs_backend_for
from tests.support.models import MLP_FP32

RUN = ("import numpy as np, edgeml_runtime as er; m = er.load(%r); m.run(np.zeros((1, 8), np.float32)); "
       "er.load(%r, threads=1).run(np.zeros((2, 8), np.float32)); print('ran')")


@needs_backend_for(MLP_FP32)
def test_loading_a_tflite_model_prints_nothing_on_stderr():
    code = RUN % (str(MLP_FP32), str(MLP_FP32))
    environment = {key: value for key, value in os.environ.items() if key != NATIVE_LOGS_ENV}
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "ran", quiet.stderr
    assert quiet.stderr == ""


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                    reason="the announcement checked is LiteRT's (ai_edge_litert is not installed here)")
def test_the_native_lines_are_shown_on_request():
    code = RUN % (str(MLP_FP32), str(MLP_FP32))
    environment = {key: value for key, value in os.environ.items() if key != NATIVE_LOGS_ENV}
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**environment, NATIVE_LOGS_ENV: "1"})
    assert shown.returncode == 0, shown.stderr
    assert "XNNPACK delegate" in shown.stderr  # LiteRT announces its delegate; shown on request


def test_what_a_failing_call_printed_is_shown_after_all(monkeypatch):
    """Captured lines are dropped only when the call succeeds: a failure's explanation is not lost."""
    monkeypatch.delenv(NATIVE_LOGS_ENV, raising=False)
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)
    try:
        with quiet_native_logs():
            os.write(2, b"dropped\n")
        with pytest.raises(RuntimeError), quiet_native_logs():
            os.write(2, b"kept because the call failed\n")
            raise RuntimeError("boom")
        os.write(2, b"after\n")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write)
    with os.fdopen(read) as pipe:
        assert pipe.read() == "kept because the call failed\nafter\n"
