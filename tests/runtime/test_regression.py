"""The bench regression gate (`edgeml_runtime.regression`) on hand-made edgeml.bench/1 results: no model
and no backend needed, so it runs wherever the runtime does."""

from __future__ import annotations

import json

import pytest
from edgeml_runtime.errors import CheckFailed, EdgeMLError
from edgeml_runtime.regression import check_regressions, compare_to_baseline, comparison_key, load_baseline


def result(model="/models/a.tflite", fmt="tflite", backend="litert", threads=1, p50=1.0) -> dict:
    return {"schema": "edgeml.bench/1", "model": model, "format": fmt, "backend": backend, "threads": threads,
            "latency_ms": {"p50": p50}}


def test_results_match_on_file_name_format_backend_and_threads():
    assert comparison_key(result(model="/here/a.tflite")) == comparison_key(result(model="/elsewhere/a.tflite"))
    assert comparison_key(result()) == ("a.tflite", "tflite", "litert", 1)
    assert comparison_key(result(threads=2)) != comparison_key(result())
    assert comparison_key(result(backend="tflite_runtime")) != comparison_key(result())


def test_rows_follow_the_results_and_mark_regressions():
    baseline = [result(p50=1.0), result(model="b.onnx", fmt="onnx", backend="onnxruntime", p50=2.0)]
    results = [result(model="b.onnx", fmt="onnx", backend="onnxruntime", p50=2.1),  # +5 %: within 10 %
               result(p50=1.5),  # +50 %
               result(model="new.tflite", p50=9.0)]  # no baseline: not compared
    rows = compare_to_baseline(results, baseline, 0.10)
    assert [(row.model, row.regressed) for row in rows] == [("b.onnx", False), ("a.tflite", True)]
    assert rows[0].change == pytest.approx(0.05) and rows[1].change == pytest.approx(0.5)
    assert (rows[1].baseline_p50_ms, rows[1].p50_ms) == (1.0, 1.5)
    assert rows[1].to_dict()["regressed"] is True
    with pytest.raises(CheckFailed) as failed:
        check_regressions(rows, 0.10)
    assert str(failed.value) == "p50 slower than the baseline by more than 10%: a.tflite (+50.0%)"


def test_faster_or_equal_results_pass():
    rows = compare_to_baseline([result(p50=0.5), result(threads=2, p50=1.08)],
                               [result(p50=1.0), result(threads=2, p50=1.0)], 0.10)
    assert not any(row.regressed for row in rows)  # -50 % and +8 %
    check_regressions(rows, 0.10)


def test_a_gate_that_compares_nothing_is_an_error():
    with pytest.raises(EdgeMLError, match="no result matches the baseline") as raised:
        compare_to_baseline([result(threads=4)], [result(threads=1)], 0.10)
    assert not isinstance(raised.value, CheckFailed)  # bad input (exit 2), not a failed check (exit 1)


def test_load_baseline_accepts_a_list_or_one_result(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps([result(), result(threads=2)]))
    (tmp_path / "one.json").write_text(json.dumps(result()))
    assert len(load_baseline(tmp_path / "list.json")) == 2
    assert load_baseline(str(tmp_path / "one.json")) == [result()]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "baseline file not found"),
        ("{not json", "is not JSON"),
        (json.dumps([{"schema": "edgeml.manifest/1"}]), "is not edgeml.bench/1 output"),
        (json.dumps([result(), "text"]), "is not edgeml.bench/1 output"),
    ],
)
def test_load_baseline_rejects_what_bench_did_not_write(tmp_path, content, message):
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(EdgeMLError, match=message):
        load_baseline(path)
