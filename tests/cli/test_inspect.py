"""`edgeml inspect` on every format it reads."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.support.cli import edgeml
from tests.support.models import DATA, MLP_ONNX

# A Keras 2 model as MLPerf Tiny's visual wake words model is saved (tf_keras .h5 with a DepthwiseConv2D whose
# config has `groups`, which Keras 3 refuses), and a plain TF SavedModel: both are what `edgeml convert` reads.
SOURCES = """
import sys, numpy as np, tensorflow as tf, tf_keras
root = sys.argv[1]
legacy = tf_keras.Sequential([tf_keras.layers.InputLayer(input_shape=(8, 8, 3)),
                              tf_keras.layers.DepthwiseConv2D(3, activation="relu"),
                              tf_keras.layers.GlobalAveragePooling2D(), tf_keras.layers.Dense(4, name="scores")])
legacy.save(root + "/legacy.h5", save_format="h5")
module = tf.Module()
module.w = tf.Variable(np.arange(12, dtype="float32").reshape(4, 3) / 10.0)
@tf.function(input_signature=[tf.TensorSpec((None, 4), tf.float32, name="x")])
def serve(x):
    return {"y": tf.nn.relu(tf.matmul(x, module.w))}
tf.saved_model.save(module, root + "/saved_model", signatures={"serving_default": serve})
"""


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
    assert other.returncode == 2 and "edgeml inspect reads .tflite, .onnx, .ort, .keras, .h5 files and SavedModel " \
        "directories" in other.stderr


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    subprocess.run([sys.executable, "-c", SOURCES, str(root)], check=True, capture_output=True, timeout=600)
    return root


@pytest.mark.slow
def test_keras2_h5_is_read_like_convert_reads_it(sources):
    """Keras 3 cannot read it (a TypeError inside Keras); the converters' loader falls back to tf_keras."""
    done = edgeml("inspect", sources / "legacy.h5", "--json", check_exit=0)
    report = json.loads(done.stdout)
    assert report["format"] == "h5" and report["loader"].startswith("tf_keras")
    assert report["inputs"] == [{"name": "input_1", "shape": [None, 8, 8, 3], "dtype": "float32"}]
    assert report["outputs"][0]["name"] == "scores" and report["outputs"][0]["shape"] == [None, 4]
    assert report["ops"] == {"DepthwiseConv2D": 1, "GlobalAveragePooling2D": 1, "Dense": 1}
    assert report["parameters"] == 3 * 3 * 3 + 3 + 3 * 4 + 4
    assert report["notes"] == [next(note for note in report["notes"] if note.startswith("a Keras 2 file"))]
    assert len(report["notes"][0]) < 100  # one short line, not Keras 3's config dump
    table = edgeml("inspect", sources / "legacy.h5", check_exit=0).stdout
    assert "loaded with tf_keras" in table and "DepthwiseConv2D" in table


@pytest.mark.slow
def test_saved_model_directory(sources):
    report = json.loads(edgeml("inspect", sources / "saved_model", "--json", check_exit=0).stdout)
    assert report["format"] == "saved_model" and report["signature"] == "serving_default"
    assert report["inputs"] == [{"name": "x", "shape": [None, 4], "dtype": "float32"}]
    assert report["outputs"] == [{"name": "y", "shape": [None, 3], "dtype": "float32"}]
    assert report["ops"] == {"MatMul": 1, "Relu": 1} and report["parameters"] == 12


@pytest.fixture(scope="module")
def qdq_onnx(tmp_path_factory):
    """The MLP quantized by ONNX Runtime's static quantizer in QDQ format: int8 inside, float32 I/O."""
    quantization = pytest.importorskip("onnxruntime.quantization")

    class Samples(quantization.CalibrationDataReader):
        def __init__(self):
            self.samples = iter({"features": row[None]} for row in
                                np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32))

        def get_next(self):
            return next(self.samples, None)

    path = tmp_path_factory.mktemp("qdq") / "mlp_qdq.onnx"
    quantization.quantize_static(str(MLP_ONNX), str(path), Samples(), quant_format=quantization.QuantFormat.QDQ,
                                 activation_type=quantization.QuantType.QInt8,
                                 weight_type=quantization.QuantType.QInt8)
    return path


def test_qdq_onnx_is_int8_with_float_io(qdq_onnx):
    report = json.loads(edgeml("inspect", qdq_onnx, "--json", check_exit=0).stdout)
    assert report["quantization"] == "int8" and report["io_dtype"] == "float32"
    assert report["inputs"][0]["dtype"] == "float32" and "QuantizeLinear" in report["ops"]
    assert "quantization int8 (float32 inputs/outputs)" in edgeml("inspect", qdq_onnx, check_exit=0).stdout
    fp32 = json.loads(edgeml("inspect", MLP_ONNX, "--json", check_exit=0).stdout)
    assert fp32["quantization"] is None


def test_bench_reports_qdq_onnx_as_int8(qdq_onnx):
    results = json.loads(edgeml("bench", qdq_onnx, "--runs", "5", "--min-seconds", "0", "--json",
                                check_exit=0).stdout)
    assert results[0]["quantization"] == "int8" and results[0]["io_quantized"] is False
    table = edgeml("bench", qdq_onnx, "--runs", "5", "--min-seconds", "0", check_exit=0).stdout
    assert "int8 (float I/O)" in table


def test_onnx_source_report_names_symbolic_dims_opset_and_external_data(tmp_path):
    from tests.support import onnx_graphs

    two = onnx_graphs.two_input_symbolic_batch(tmp_path / "two.onnx")
    report = json.loads(edgeml("inspect", two.path, "--json").stdout)
    assert [spec["shape"] for spec in report["inputs"]] == [[None, 1, 8, 8], [None, 8]]
    assert report["dynamic_dims"]["image"] == {"0": "batch"} and report["dynamic_dims"]["stats"] == {"0": "batch"}
    assert report["onnx"]["opset"] == {"ai.onnx": onnx_graphs.OPSET}
    assert report["ops"]["Conv"] == 1 and report["ops"]["Gemm"] == 3
    assert report["quantization"] is None
    text = edgeml("inspect", two.path).stdout
    assert "(batch, 1, 8, 8)" in text and "opset ai.onnx 17" in text

    external = onnx_graphs.with_external_data(tmp_path / "external")
    report = json.loads(edgeml("inspect", external.path, "--json").stdout)
    assert report["onnx"]["external_data"] == ["weights.bin"]
    assert report["parameters"] == 64 * 128 + 128 + 128 * 96 + 96 + 96 * 10 + 10


def test_onnx_with_external_data_outside_its_folder_is_refused(tmp_path):
    from tests.support import onnx_graphs

    hostile = onnx_graphs.with_external_data(tmp_path / "model", location="../outside.bin")
    done = edgeml("inspect", hostile.path, check_exit=2)
    assert "outside the model's folder" in done.stderr and "Traceback" not in done.stderr
