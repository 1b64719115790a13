"""The recommended artifact (edgeml_runtime.recommend) and its place in the conversion manifest (documents).

choose() is checked on handmade rows (the rule itself: fastest, ties to the smaller file, then fewer threads);
measure() on the committed tiny models, really run in LiteRT / ONNX Runtime: which one wins is the machine's
business, so the tests check the rule against the run's own table, never a timing of their own.
"""

from __future__ import annotations

import json
import shutil

import pytest
from edgeml_runtime import recommend
from edgeml_runtime.documents import DocumentError, read_conversion_manifest

from tests.support.models import DATA, backend_installed

MODELS = [("mlp_fp32.tflite", "tflite", "fp32"), ("mlp_int8.tflite", "tflite", "int8"),
          ("mlp_fp32.onnx", "onnx", "fp32")]


def row(path, p50, size, threads=1, **extra):
    return {"path": path, "format": "tflite", "quantization": "fp32", "bytes": size, "threads": threads,
            "backend": "litert", "p50_ms": p50, "runs": 100, **extra}


def entry(path, fmt="tflite", quantization="fp32", passed=True, **extra):
    return {"path": path, "format": fmt, "quantization": quantization, "bytes": 1000,
            "validation": {"passed": passed}, **extra}


def manifest(artifacts, **extra):
    return {"schema": "edgeml.manifest/1", "source": {"path": "m.keras", "kind": "keras"}, "artifacts": artifacts,
            **extra}


def conversion_folder(tmp_path, *, broken=False):
    """The committed models as a conversion's output: every one passed; `broken` adds a damaged .tflite."""
    artifacts = []
    for name, fmt, quantization in MODELS:
        shutil.copyfile(DATA / name, tmp_path / name)
        artifacts.append({**entry(name, fmt, quantization), "bytes": (tmp_path / name).stat().st_size})
    if broken:
        (tmp_path / "broken.tflite").write_bytes(b"\x00\x00\x00\x00TFL3" + b"\x00" * 40)
        artifacts.append(entry("broken.tflite"))
    data = manifest(artifacts)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    return data


# --- the rule -----------------------------------------------------------------------------------------------------


def test_the_fastest_row_wins_when_nothing_is_close():
    rows = [row("a.tflite", 1.00, 4000), row("b.tflite", 0.50, 9000), row("c.onnx", 0.80, 1000)]
    assert recommend.choose(rows)["path"] == "b.tflite"


def test_rows_within_the_tie_tolerance_go_to_the_smaller_file_then_fewer_threads():
    rows = [row("big.tflite", 1.00, 9000), row("small.tflite", 1.04, 3000, threads=2),
            row("small.tflite", 1.049, 3000, threads=1), row("tiny-but-slow.tflite", 1.06, 100)]
    chosen = recommend.choose(rows, tie_tolerance=0.05)
    assert (chosen["path"], chosen["threads"]) == ("small.tflite", 1)  # 1.06 is beyond 5% of 1.00: not a tie
    assert recommend.choose(rows, tie_tolerance=0.0)["path"] == "big.tflite"  # no tolerance: strictly the fastest


def test_skipped_rows_are_never_chosen_and_nothing_measured_is_no_recommendation():
    skipped = {"path": "x.onnx", "format": "onnx", "quantization": "fp32", "bytes": 10, "skipped": "no backend"}
    assert recommend.choose([skipped, row("a.tflite", 2.0, 5000)])["path"] == "a.tflite"
    assert recommend.choose([skipped]) is None
    assert recommend.recommendation([skipped], {"kind": "this machine"}) is None


def test_the_recommendation_carries_the_choice_the_machine_and_the_table():
    rows = [row("a.tflite", 1.0, 4000, threads=2), row("b.tflite", 3.0, 2000)]
    chosen = recommend.recommendation(rows, {"kind": "this machine", "hostname": "h"})
    assert {key: chosen[key] for key in ("path", "threads", "p50_ms", "format", "quantization", "bytes")} == {
        "path": "a.tflite", "threads": 2, "p50_ms": 1.0, "format": "tflite", "quantization": "fp32", "bytes": 4000}
    assert chosen["measured_on"] == {"kind": "this machine", "hostname": "h"} and chosen["table"] == rows


def test_default_thread_counts():
    assert recommend.default_threads(1) == [1]
    assert recommend.default_threads(4) == [1, 2, 3, 4]
    assert recommend.default_threads(12) == [1, 2, 4, 8, 12]  # many cores: powers of two and the core count


# --- candidates: only what passed and what the runtime runs ---------------------------------------------------------


def test_candidates_are_the_passing_runnable_artifacts(tmp_path):
    data = manifest([entry("m.fp32.tflite"), entry("m.int8.tflite", quantization="int8", passed=False),
                     entry("m.int8.onnx", "onnx", "int8"), entry("m.int8.ort", "onnx", "int8"),
                     entry("m.int8_model_data.cc", "tflm", "int8"),
                     entry("flex.fp32.tflite", flex_ops=["MatrixInverse"])])
    found = recommend.candidates(tmp_path, data)
    assert [candidate.name for candidate in found] == ["m.fp32.tflite", "m.int8.onnx", "m.int8.ort"]
    assert found[0].path == tmp_path / "m.fp32.tflite" and found[0].bytes == 1000


@pytest.mark.parametrize("path", ["../outside.tflite", "/etc/passwd.tflite", "a/../../b.tflite"])
def test_candidates_refuse_paths_leaving_the_folder(tmp_path, path):
    with pytest.raises(DocumentError, match="must be relative and inside the directory"):
        recommend.candidates(tmp_path, manifest([entry(path)]))


# --- measuring, for real ------------------------------------------------------------------------------------------


def test_measure_times_every_candidate_at_every_thread_count_and_the_choice_is_the_fastest(tmp_path):
    data = conversion_folder(tmp_path, broken=True)
    events = []
    rows = recommend.measure(recommend.candidates(tmp_path, data), threads=[1, 2], budget_s=0.3,
                             progress=events.append)
    assert "measuring 4 artifact(s) × 2 thread count(s) (1, 2)" in [event.message for event in events]
    measured = [r for r in rows if "p50_ms" in r]
    runnable = [name for name, _, _ in MODELS if backend_installed(name)]
    assert sorted((r["path"], r["threads"]) for r in measured) == sorted(
        (name, threads) for name in runnable for threads in (1, 2))
    assert all(r["p50_ms"] > 0 and r["runs"] >= recommend.MIN_ROUNDS for r in measured)
    skipped = {r["path"]: r["skipped"] for r in rows if "skipped" in r}
    # Damaged: one row with the reason (without a TFLite backend here, the missing backend is the reason).
    assert ("cannot load" if backend_installed("broken.tflite") else "pip install") in skipped.pop("broken.tflite")
    for name, _, _ in MODELS:
        if not backend_installed(name):
            assert "pip install" in skipped.pop(name)  # the backend is missing here: says what to install
    assert skipped == {}

    chosen = recommend.recommendation(rows, recommend.machine_facts())
    fastest = min(r["p50_ms"] for r in measured)
    assert chosen["p50_ms"] <= fastest * (1 + recommend.TIE_TOLERANCE)  # never slower than the table's fastest
    assert all(r["bytes"] >= chosen["bytes"] for r in measured if r["p50_ms"] <= fastest * 1.05)
    assert chosen["path"] in runnable and chosen["table"] == rows


def test_a_damaged_artifact_is_one_skipped_row_with_the_reason(tmp_path):
    data = conversion_folder(tmp_path, broken=True)
    broken = [c for c in recommend.candidates(tmp_path, data) if c.name == "broken.tflite"]
    rows = recommend.measure(broken, threads=[1, 2], budget_s=0.05)
    assert len(rows) == 1 and rows[0]["path"] == "broken.tflite" and rows[0]["skipped"]
    assert "p50_ms" not in rows[0]


def test_machine_facts_say_where_it_was_measured():
    facts = recommend.machine_facts()
    assert facts["kind"] == "this machine" and facts["hostname"] and facts["cores"] >= 1
    assert {"arch", "cpu", "python", "os"} <= set(facts)
    assert set(facts["backends"]) == {name for name in ("litert", "tflite_runtime", "onnxruntime")
                                      if _installed(name)}


def _installed(name):
    from importlib import metadata

    from edgeml_runtime.formats import BACKENDS

    try:
        metadata.version(BACKENDS[name].distribution)
        return True
    except metadata.PackageNotFoundError:
        return False


# --- the manifest's `recommended` ---------------------------------------------------------------------------------


def test_a_manifest_without_a_recommendation_still_reads(tmp_path):
    conversion_folder(tmp_path)
    read = read_conversion_manifest(tmp_path)
    assert read.recommended is None and read.recommended_path is None


def test_the_recommendation_is_read_with_its_file(tmp_path):
    data = conversion_folder(tmp_path)
    data["recommended"] = {"path": "mlp_fp32.onnx", "threads": 1, "p50_ms": 0.02, "table": []}
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    read = read_conversion_manifest(tmp_path)
    assert read.recommended["threads"] == 1 and read.recommended_path == tmp_path / "mlp_fp32.onnx"
    data["recommended"] = None  # no artifact passed: null
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    assert read_conversion_manifest(tmp_path).recommended is None


@pytest.mark.parametrize("value, message", [
    ({"path": "../outside.tflite"}, "recommended path '../outside.tflite' must be relative and inside the directory"),
    ({"path": "/tmp/x.tflite"}, "must be relative and inside the directory"),
    ({"path": "sub/../../x.tflite"}, "must be relative and inside the directory"),
    ({"path": "other.tflite"}, "'recommended' names other.tflite, which is not one of the listed artifacts"),
    ({"threads": 2}, "recommended path 'None' must be relative"),  # no path at all
    ({"path": "failed.tflite"}, "'recommended' names failed.tflite, which failed validation"),
    ("mlp_fp32.onnx", "'recommended' must be an object or null"),
])
def test_a_recommendation_leaving_the_folder_or_the_artifacts_is_refused(tmp_path, value, message):
    data = conversion_folder(tmp_path)
    data["artifacts"].append(entry("failed.tflite", passed=False))
    data["recommended"] = value
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(DocumentError) as refused:
        read_conversion_manifest(tmp_path)
    assert message in str(refused.value)
