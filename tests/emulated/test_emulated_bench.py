"""`python -m edgeml_runtime bench MODEL --json` end to end on the emulated Pi: valid edgeml.bench/1
JSON that says aarch64 and marks the run as emulated (its latency is not the Pi's)."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import runtime_cli

pytestmark = [pytest.mark.emulated, pytest.mark.slow]

QUICK = ["--json", "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--warmup-seconds", "0", "--threads", "1"]
LATENCY_KEYS = {"mean", "std", "min", "p50", "p90", "p95", "p99", "max"}


@pytest.mark.parametrize("key", ["tflite_int8", "onnx_fp32"])
def test_bench_on_emulated_pi(emulated_pi, models, key):
    model = models[key]
    done = emulated_pi.run(["python3", "-m", "edgeml_runtime", "bench", str(model), *QUICK],
                           capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)  # stdout is the JSON alone; logs go to stderr

    assert result["schema"] == "edgeml.bench/1"
    assert result["model_bytes"] == model.stat().st_size
    assert result["format"] == model.suffix.lstrip(".")
    assert result["backend"] == ("litert" if key.startswith("tflite") else "onnxruntime")
    assert result["runs"] >= 5 and result["threads"] == 1
    assert set(result["latency_ms"]) == LATENCY_KEYS
    latency = result["latency_ms"]
    assert 0 < latency["min"] <= latency["p50"] <= latency["p99"] <= latency["max"]
    assert result["machine"]["arch"] == "aarch64"
    assert result["machine"]["python"].startswith("3.11.")
    assert result["machine"]["emulated"] == emulated_pi.emulated
    assert emulated_pi.emulated.startswith("qemu-user 10.")


def test_bench_table_on_emulated_pi_says_emulated(emulated_pi, models):
    args = [a for a in QUICK if a != "--json"]
    done = emulated_pi.run(["python3", "-m", "edgeml_runtime", "bench", str(models["tflite_fp32"]), *args],
                           capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"EMULATED: {emulated_pi.emulated}" in done.stdout
    assert "aarch64" in done.stdout


def test_host_bench_is_not_marked_emulated(models):
    """The marker comes from the emulated Pi, not from the runtime's defaults."""
    done = runtime_cli("bench", models["tflite_int8"], *QUICK, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    machine = json.loads(done.stdout)["machine"]
    assert machine["emulated"] is None
