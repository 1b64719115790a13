"""`edgeml inspect` on every format it reads."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.cli import edgeml
from tests.support.models import DATA


def test_tflite_int8_report():
    report = json.loads(edgeml("inspect", DATA / "mlp_int8.tflite", "--json").stdout)
    assert report["format"] == "tflite" and report["quantization"] == "int8"
    assert report["ops"] == {"FULLY_CONNECTED": 2, "SOFTMAX": 1}
    # 8x16 + 16x4 weights; the Dense biases are all zero at initialisation and the converter drops them.
    assert report["parameters"] == 8 * 16 + 16 * 4
    assert report["inputs"][0]["quantization"]["zero_point"] == 5
    assert report["bytes"] == (DATA / "mlp_int8.tflite").stat().st_size


def test_onnx_report_counts_initializers():
    report = json.loads(edgeml("inspect", DATA / "mlp_fp32.onnx", "--json").stdout)
    assert report["format"] == "onnx"
    assert report["ops"].get("MatMul") == 2
    assert report["parameters"] == 8 * 16 + 16 * 4  # tf2onnx also folds away the all-zero bias adds


def test_keras_report(tmp_path):
    code = ("import keras\nm = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])\n"
            f"m.save({str(tmp_path / 'm.keras')!r})")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)
    report = json.loads(edgeml("inspect", tmp_path / "m.keras", "--json").stdout)
    assert report["format"] == "keras" and report["parameters"] == 15 and report["ops"] == {"Dense": 1}


def test_table_output_and_bad_files(tmp_path):
    table = edgeml("inspect", DATA / "two_io_fp32.tflite").stdout
    assert "image" in table and "meta" in table and "CONV_2D" in table
    missing = edgeml("inspect", tmp_path / "nope.onnx")
    assert missing.returncode == 2 and "model file not found" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "notes.txt").write_text("hello")
    other = edgeml("inspect", tmp_path / "notes.txt")
    assert other.returncode == 2 and "edgeml inspect reads .tflite, .onnx, .ort, .keras and .h5" in other.stderr
