"""`edgeml bench` and the top-level CLI, run as a user runs them (subprocesses, real backends)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import edgeml
from tests.support.models import DATA

FAST = ["--runs", "20", "--min-seconds", "0"]


def test_version_lists_every_part():
    lines = edgeml("--version", check_exit=0).stdout.splitlines()
    names = [line.split()[0] for line in lines]
    assert names[:2] == ["edgeml", "edgeml-runtime"]
    assert {"ai-edge-litert", "tflite-runtime", "onnxruntime"} <= set(names)
    # Each backend with its installed version, or "not installed": what is true here, whatever is installed.
    from importlib import metadata

    for name in ("ai-edge-litert", "tflite-runtime", "onnxruntime"):
        try:
            expected = f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            expected = f"{name} not installed"
        assert expected in lines, (expected, lines)


def test_help_is_fast_and_imports_no_tensorflow():
    code = ("import sys; from edgeml.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'onnx')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("[]"), result.stdout + result.stderr
    assert "convert" in result.stdout and "quickstart" in result.stdout


def test_bench_json_compares_models_and_threads():
    results = json.loads(edgeml("bench", DATA / "mlp_fp32.tflite", DATA / "mlp_fp32.onnx", "--threads", "1,2",
                                *FAST, "--json", check_exit=0).stdout)
    assert len(results) == 4
    assert {(Path(r["model"]).name, r["threads"]) for r in results} == {
        ("mlp_fp32.tflite", 1), ("mlp_fp32.tflite", 2), ("mlp_fp32.onnx", 1), ("mlp_fp32.onnx", 2)}
    assert all(r["schema"] == "edgeml.bench/1" and r["runs"] >= 20 for r in results)


def test_piped_bench_shows_progress_on_stderr_and_only_results_on_stdout():
    """Piped (not a terminal): one progress line per finished configuration on stderr, results alone on stdout."""
    models = (DATA / "mlp_fp32.tflite", DATA / "mlp_fp32.onnx")
    done = edgeml("bench", *models, "--threads", "1", *FAST, "--json", check_exit=0)
    results = json.loads(done.stdout)  # the whole of stdout is the JSON document
    progress = [line for line in done.stderr.splitlines() if ": p50 " in line]
    assert len(progress) == len(results) == 2
    for line, result in zip(progress, results):
        assert line.startswith(f"{Path(result['model']).name} {result['backend']} threads=1: p50 ")
        assert line.endswith(" ms")
    table = edgeml("bench", *models, "--threads", "1", *FAST, check_exit=0)
    assert "p50 ms" in table.stdout and ": p50 " not in table.stdout  # the table, without the progress
    assert len([line for line in table.stderr.splitlines() if ": p50 " in line]) == 2


def test_baseline_verdicts_go_to_stderr_and_keep_json_clean(tmp_path):
    current = edgeml("bench", DATA / "mlp_fp32.onnx", "--threads", "1", *FAST, "--json", check_exit=0).stdout
    (tmp_path / "baseline.json").write_text(current)
    checked = edgeml("bench", DATA / "mlp_fp32.onnx", "--threads", "1", *FAST, "--json", "--baseline",
                     tmp_path / "baseline.json", "--max-regression", "1000%", check_exit=0)
    assert len(json.loads(checked.stdout)) == 1
    assert "mlp_fp32.onnx onnxruntime threads=1: p50 " in checked.stderr and checked.stderr.rstrip().endswith("ok")


def test_bench_table_names_every_configuration():
    table = edgeml("bench", DATA / "mlp_int8.tflite", *FAST, "--backend", "litert", check_exit=0).stdout
    assert "mlp_int8.tflite" in table and "int8" in table and "litert" in table and "p50 ms" in table


def test_bench_manifest_directory_expands_to_its_artifacts(tmp_path):
    for name in ("mlp_fp32.tflite", "mlp_fp32.onnx"):
        (tmp_path / name).write_bytes((DATA / name).read_bytes())
    manifest = {"schema": "edgeml.manifest/1", "artifacts": [{"path": "mlp_fp32.tflite"}, {"path": "mlp_fp32.onnx"}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    results = json.loads(edgeml("bench", tmp_path, *FAST, "--json", check_exit=0).stdout)
    assert sorted(Path(r["model"]).name for r in results) == ["mlp_fp32.onnx", "mlp_fp32.tflite"]


def test_baseline_gate_fails_on_regression_and_passes_within_limit(tmp_path):
    current = json.loads(edgeml("bench", DATA / "mlp_fp32.tflite", "--threads", "1", *FAST, "--json",
                                check_exit=0).stdout)
    faster = json.loads(json.dumps(current))
    faster[0]["latency_ms"]["p50"] = current[0]["latency_ms"]["p50"] / 10  # an old run 10x faster
    (tmp_path / "fast.json").write_text(json.dumps(faster))
    slower = json.loads(json.dumps(current))
    slower[0]["latency_ms"]["p50"] = current[0]["latency_ms"]["p50"] * 100  # an old run 100x slower
    (tmp_path / "slow.json").write_text(json.dumps(slower))

    failed = edgeml("bench", DATA / "mlp_fp32.tflite", "--threads", "1", *FAST, "--baseline", tmp_path / "fast.json",
                    "--max-regression", "10%")
    assert failed.returncode == 1
    assert "p50 slower than the baseline by more than 10%" in failed.stderr
    passed = edgeml("bench", DATA / "mlp_fp32.tflite", "--threads", "1", *FAST, "--baseline", tmp_path / "slow.json")
    assert passed.returncode == 0, passed.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "missing.tflite"], "model file not found: missing.tflite"),
        (["bench", str(DATA / "mlp_fp32.tflite"), "--threads", "two"], "expected numbers separated by commas"),
        (["bench", str(DATA / "mlp_fp32.tflite"), "--backend", "onnxruntime"], "none of the backends"),
        (["bench", str(DATA / "make_models.py")], "not a .tflite/.onnx/.ort model"),
    ],
)
def test_bench_bad_input_exits_2_without_traceback(args, message):
    result = edgeml(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_more_threads_than_cores_is_a_warning_and_peak_memory_is_explained():
    import os

    too_many = (os.cpu_count() or 1) + 1
    done = edgeml("bench", DATA / "mlp_fp32.tflite", "--threads", f"1,{too_many}", *FAST, check_exit=0)
    assert f"warning: --threads {too_many} is more than this machine's {os.cpu_count()} cores" in done.stderr
    assert "peak RSS" in done.stdout and "high-water mark" in done.stdout and "reset before each model" in done.stdout
    assert "MiB" in done.stdout  # sizes and memory in one unit
    quiet = edgeml("bench", DATA / "mlp_fp32.tflite", "--threads", "1", *FAST, check_exit=0)
    assert "warning" not in quiet.stderr
