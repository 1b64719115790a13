"""`python -m edgeml_runtime info|run|bench`: outputs, files, JSON and exit codes, as a user runs them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.cli import runtime_cli
from tests.support.marks import model_params

BENCH_KEYS = {
    "schema", "model", "model_bytes", "format", "quantization", "backend", "backend_version", "threads",
    "init_ms", "first_ms", "warmup_runs", "runs", "latency_ms", "throughput_ips", "peak_rss_mb", "machine",
    "timestamp", "edgeml_runtime",
}


@model_params("mlp_int8.tflite", "mlp_fp32.onnx")
def test_info_json(data_dir, model_file):
    info = json.loads(runtime_cli("info", data_dir / model_file, "--json", check_exit=0).stdout)
    assert info["inputs"][0]["name"] == "features"
    assert info["inputs"][0]["shape"] == [None, 8]
    if model_file.endswith("int8.tflite"):
        assert info["quantization"] == "int8"
        assert info["inputs"][0]["quantization"]["scale"] > 0


@model_params("mlp_fp32.tflite", "mlp_fp32.onnx")
def test_run_reads_npy_and_writes_npy_equal_to_the_api(tmp_path, data_dir, reference, model_file):
    import edgeml_runtime as er

    np.save(tmp_path / "x.npy", reference["mlp_inputs"])
    runtime_cli("run", data_dir / model_file, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy", check_exit=0)
    expected = next(iter(er.load(data_dir / model_file).run(reference["mlp_inputs"]).values()))
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


@model_params("two_io_fp32.onnx")
def test_run_npz_by_name_to_npz(tmp_path, data_dir, reference, model_file):
    np.savez(tmp_path / "x.npz", image=reference["two_io_image"], meta=reference["two_io_meta"])
    runtime_cli("run", data_dir / model_file, "-i", tmp_path / "x.npz", "-o", tmp_path / "y.npz", check_exit=0)
    with np.load(tmp_path / "y.npz") as outputs:
        shapes = sorted(outputs[key].shape for key in outputs.files)
    assert shapes == [(2, 1), (2, 3)]
    refused = runtime_cli("run", data_dir / model_file, "-i", tmp_path / "x.npz", "-o", tmp_path / "y.npy")
    assert refused.returncode == 2
    assert "write them to a .npz file" in refused.stderr


@model_params("mlp_int8.tflite", "mlp_fp32.onnx")
def test_bench_json_has_exactly_the_schema(data_dir, model_file):
    result = json.loads(runtime_cli("bench", data_dir / model_file, "--runs", "20", "--min-seconds", "0",
                                    "--warmup-seconds", "0", "--json", "--threads", "1", check_exit=0).stdout)
    assert set(result) == BENCH_KEYS
    assert result["schema"] == "edgeml.bench/1"
    assert result["runs"] >= 20 and result["threads"] == 1
    latency = result["latency_ms"]
    assert list(latency) == ["mean", "std", "min", "p50", "p90", "p95", "p99", "max"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert result["throughput_ips"] > 0 and result["peak_rss_mb"] > 10
    assert {"arch", "cpu", "cores", "python", "os"} <= set(result["machine"])


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "model file not found"),
        (b"", "only 0 bytes"),
        (b"hello, I am a text file\n", "not a valid TFLite model"),
    ],
)
def test_bad_models_exit_2_with_one_line_and_no_traceback(tmp_path, content, message):
    path = tmp_path / "model.tflite"
    if content is not None:
        path.write_bytes(content)
    result = runtime_cli("info", path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 or "XNNPACK" in result.stderr


@model_params("mlp_fp32.tflite")
def test_wrong_input_file_exit_2(tmp_path, data_dir, model_file):
    np.save(tmp_path / "x.npy", np.zeros((1, 5), np.float32))
    result = runtime_cli("run", data_dir / model_file, "-i", tmp_path / "x.npy")
    assert result.returncode == 2
    assert "input 'features': expected shape (None, 8) float32, got (1, 5) float32" in result.stderr
    assert "Traceback" not in result.stderr


def test_latency_percentiles_match_numpy():
    import numpy as np
    from edgeml_runtime.bench import latency_stats

    samples = np.random.default_rng(1).exponential(size=101).tolist()
    stats = latency_stats(samples)
    for percent in (50, 90, 95, 99):
        assert stats[f"p{percent}"] == round(float(np.percentile(samples, percent)), 4)
    assert stats["min"] == round(min(samples), 4) and stats["max"] == round(max(samples), 4)
