"""`edgeml select` on this machine: every passing artifact measured (real LiteRT / ONNX Runtime), the fastest
written into the manifest as `recommended` (atomically, nothing else changed), what Predictor then loads; the
device side `python -m edgeml_runtime select --json`; the precedence rule (a real device's recommendation is never
replaced by an emulated one); bad input exits 2 with one line and leaves the manifest as it was; `edgeml bench`
marks the recommended artifact. Speed figures are not asserted (tests/ never time things)."""

from __future__ import annotations

import json
import os

import pytest
from edgeml_runtime import Predictor
from edgeml_runtime.documents import read_conversion_manifest
from edgeml_runtime.select_cli import kept_instead

from tests.support.cli import edgeml, runtime_cli
from tests.support.conversions import A_DEVICE, THIS_MACHINE, conversion_dir
from tests.support.marks import needs_backend_for
from tests.support.models import MLP_FP32, MLP_INT8, MLP_ONNX

pytestmark = needs_backend_for(MLP_FP32, MLP_ONNX)

QUICK = ["--threads", "1", "--budget-seconds", "0.2"]


def test_select_measures_here_and_rewrites_the_recommendation(tmp_path):
    out = conversion_dir(tmp_path / "converted", recommended=MLP_INT8.name)
    (out / "manifest.json").chmod(0o640)
    before = json.loads((out / "manifest.json").read_text())
    result = json.loads(edgeml("select", out, *QUICK, "--json", check_exit=0).stdout)

    after = json.loads((out / "manifest.json").read_text())
    recommended = after["recommended"]
    assert result["written"] and result["recommended"] == recommended
    assert {key: value for key, value in after.items() if key != "recommended"} == {
        key: value for key, value in before.items() if key != "recommended"}  # nothing else touched
    (measurement,) = result["measurements"]
    rows = measurement["rows"]
    assert [(row["path"], row["threads"]) for row in rows] == [(m.name, 1) for m in (MLP_FP32, MLP_INT8, MLP_ONNX)]
    assert all(row["p50_ms"] > 0 and row["runs"] > 0 and "skipped" not in row for row in rows)
    fastest = min(row["p50_ms"] for row in rows)
    # The rule (edgeml_runtime.recommend.choose): within 5% of the fastest p50, the smaller file wins.
    assert recommended["p50_ms"] <= fastest * 1.05
    assert recommended["path"] == measurement["chosen"]["path"] and recommended["table"] == rows
    assert recommended["measured_on"]["kind"] == "this machine"
    assert recommended["measured_on"]["cores"] == os.cpu_count()
    assert read_conversion_manifest(out).recommended_path.name == recommended["path"]
    assert Predictor.from_manifest(out).model.path.name == recommended["path"]  # what the consumers now load
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["labels.json", "manifest.json", MLP_FP32.name, MLP_INT8.name, MLP_ONNX.name])  # no temporary left
    assert (out / "manifest.json").stat().st_mode & 0o777 == 0o640


def test_only_passing_artifacts_are_candidates_and_a_stale_recommendation_is_replaced(tmp_path):
    # The recommendation names mlp_fp32.onnx, which failed its check: consumers refuse such a manifest, select
    # repairs it.
    out = conversion_dir(tmp_path / "converted", failed={MLP_FP32.name, MLP_ONNX.name})
    done = edgeml("select", out / "manifest.json", *QUICK, "--json", check_exit=0)
    assert "its recommendation is stale and will be replaced" in done.stderr
    result = json.loads(done.stdout)
    assert [row["path"] for row in result["measurements"][0]["rows"]] == [MLP_INT8.name]
    assert read_conversion_manifest(out).recommended["path"] == MLP_INT8.name


def test_the_table_marks_the_fastest_and_no_write_keeps_the_manifest(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    before = (out / "manifest.json").read_bytes()
    done = edgeml("select", out, *QUICK, "--no-write", check_exit=0)
    assert "edgeml select — this machine" in done.stdout and " ★ " in done.stdout
    assert "fastest: " in done.stdout and "is unchanged" in done.stdout
    assert (out / "manifest.json").read_bytes() == before


@pytest.mark.parametrize("case, message", [
    ("missing", "no conversion manifest at"),
    ("nothing passed", "no artifact passed its conversion check"),
    ("escaping", "must be relative and inside the directory"),
    ("threads", "thread counts must be 1 or more"),
])
def test_bad_input_exits_2_with_one_line_and_keeps_the_manifest(tmp_path, case, message):
    out = conversion_dir(tmp_path / "converted",
                         failed={m.name for m in (MLP_FP32, MLP_INT8, MLP_ONNX)} if case == "nothing passed" else ())
    if case == "escaping":
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["recommended"]["path"] = "../../outside.onnx"
        (out / "manifest.json").write_text(json.dumps(manifest))
    before = (out / "manifest.json").read_bytes()
    target = tmp_path / "nowhere" if case == "missing" else out
    extra = ["--threads", "0"] if case == "threads" else QUICK
    done = edgeml("select", target, *extra, check_exit=2)
    assert message in done.stderr and "Traceback" not in done.stderr
    assert (out / "manifest.json").read_bytes() == before


def test_the_runtime_select_prints_rows_and_machine_facts(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    before = (out / "manifest.json").read_bytes()
    document = json.loads(runtime_cli("select", out, *QUICK, "--json", check_exit=0).stdout)
    assert document["schema"] == "edgeml.select/1"
    assert [row["path"] for row in document["rows"]] == [m.name for m in (MLP_FP32, MLP_INT8, MLP_ONNX)]
    assert document["machine"]["kind"] == "this machine" and document["machine"]["cores"] == os.cpu_count()
    assert (out / "manifest.json").read_bytes() == before  # only --write writes
    runtime_cli("select", out, *QUICK, "--write", check_exit=0)
    assert read_conversion_manifest(out).recommended["measured_on"]["kind"] == "this machine"


def test_a_real_device_recommendation_is_never_replaced_by_an_emulated_one():
    on_device = {"path": MLP_ONNX.name, "measured_on": A_DEVICE}
    emulated = {"kind": "emulated rpi4", "arch": "aarch64", "emulated": True}
    assert "never replaces a real device's" in kept_instead(on_device, emulated)
    assert kept_instead(on_device, {**A_DEVICE, "host": "pi@192.0.2.11"}) is None  # another device measurement
    assert kept_instead(on_device, THIS_MACHINE) is None  # run where it will serve: this machine may be the device
    assert kept_instead({"path": MLP_ONNX.name, "measured_on": THIS_MACHINE}, emulated) is None
    assert kept_instead(None, emulated) is None


def test_bench_marks_the_recommended_artifact(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    results = json.loads(edgeml("bench", out, "--runs", "3", "--min-seconds", "0", "--json", check_exit=0).stdout)
    marks = {os.path.basename(result["model"]): result.get("recommended") for result in results}
    assert marks == {MLP_FP32.name: False, MLP_INT8.name: False, MLP_ONNX.name: True}
    table = edgeml("bench", out, "--runs", "3", "--min-seconds", "0", check_exit=0).stdout
    assert f"{MLP_ONNX.name} ★ recommended" in table
    plain = json.loads(edgeml("bench", MLP_FP32, "--runs", "3", "--min-seconds", "0", "--json", check_exit=0).stdout)
    assert "recommended" not in plain[0]  # a model file has no manifest to recommend it
