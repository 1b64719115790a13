"""`edgeml bench --per-op`: per-operator times next to the latency table, from ONNX Runtime's profiler, for
.onnx models; a plain note for .tflite ones (LiteRT's Python API has no per-operator profiler)."""

from __future__ import annotations

import json

from edgeml_runtime.profiling import TFLITE_NOTE

from tests.support.cli import edgeml
from tests.support.models import MLP_INT8, MLP_ONNX

FAST = ["--runs", "20", "--min-seconds", "0", "--threads", "1"]


def test_json_has_per_op_rows_for_onnx_and_a_note_for_tflite():
    done = edgeml("bench", MLP_ONNX, MLP_INT8, "--per-op", "--json", *FAST, check_exit=0)
    onnx_result, tflite_result = json.loads(done.stdout)
    rows = onnx_result["per_op"]
    assert rows and {"node", "op_type", "total_us", "mean_us", "median_us", "share"} <= set(rows[0])
    assert "MatMul" in {row["op_type"] for row in rows}
    summary = onnx_result["per_op_summary"]
    assert summary["p50_ms"] == onnx_result["latency_ms"]["p50"] and summary["runs"] >= 10
    assert summary["sum_vs_p50"] == round(summary["sum_ms"] / summary["p50_ms"], 4)
    assert tflite_result["per_op"] is None and tflite_result["per_op_note"] == TFLITE_NOTE


def test_text_output_lists_the_slowest_operators_after_the_table():
    done = edgeml("bench", MLP_ONNX, MLP_INT8, "--per-op", *FAST, check_exit=0)
    out = done.stdout
    assert out.index("edgeml bench") < out.index("per-operator time")  # after the latency table
    assert "of p50" in out and "MatMul" in out and "median µs" in out
    assert TFLITE_NOTE in " ".join(out.split())  # the note, whatever the terminal's wrapping


def test_without_the_flag_there_is_no_per_op_key():
    result = json.loads(edgeml("bench", MLP_ONNX, "--json", *FAST, check_exit=0).stdout)[0]
    assert "per_op" not in result and "per_op_note" not in result
