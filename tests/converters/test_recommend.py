"""`edgeml convert` names its files after the source and recommends the fastest passing artifact, measured on this
machine: real conversions (TensorFlow, tf2onnx), the artifacts timed in LiteRT and ONNX Runtime.

Which artifact is fastest is the machine's business; the tests check the rule against the manifest's own table
(the recommendation is never slower than the table's fastest beyond the tie tolerance), never a timing of their own.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from edgeml_converters import GatesFailed, convert
from edgeml_converters.modes import artifact_name, artifact_stem
from edgeml_runtime import recommend
from edgeml_runtime.documents import read_conversion_manifest

from tests.support.cli import invoke

pytestmark = pytest.mark.slow


def _passing(manifest) -> set:
    return {entry["path"] for entry in manifest["artifacts"] if entry["validation"]["passed"]}


def _check_recommendation(manifest, out):
    """The recommended artifact passed, and no passing artifact in the same run was faster beyond the tolerance."""
    chosen = manifest["recommended"]
    table = chosen["table"]
    assert chosen["path"] in _passing(manifest)
    assert {row["path"] for row in table} == _passing(manifest)  # every passing artifact measured, nothing else
    assert sorted({row["threads"] for row in table}) == recommend.default_threads()
    fastest = min(row["p50_ms"] for row in table)
    assert chosen["p50_ms"] <= fastest * (1 + recommend.TIE_TOLERANCE)
    ties = [row for row in table if row["p50_ms"] <= fastest * (1 + recommend.TIE_TOLERANCE)]
    assert chosen["bytes"] == min(row["bytes"] for row in ties)  # ties go to the smaller file
    assert chosen["measured_on"]["kind"] == "this machine" and chosen["measured_on"]["cores"] == os.cpu_count()
    read = read_conversion_manifest(out)  # what serve, Predictor and bundle read
    assert read.recommended_path == out / chosen["path"] and read.recommended_path.is_file()


@pytest.mark.parametrize("source, stem", [
    ("vww_96.keras", "vww_96"), ("legacy.h5", "legacy"), ("model.onnx", "model"), ("saved_model", "saved_model"),
    ("exported.v2", "exported.v2"),  # a SavedModel folder with a dot: the whole name
    ("my model (v2).keras", "my_model__v2"), ("ä.keras", "model"), (".keras", "keras"), ("..", "model"),
])
def test_the_stem_comes_from_the_source_and_is_safe_in_file_names(source, stem):
    assert artifact_stem(f"/models/{source}") == stem
    assert artifact_name("tflite", "int8", stem) == f"{stem}.int8.tflite"


def test_files_are_named_after_the_source_and_the_fastest_passing_one_is_recommended(models, tmp_path):
    source = tmp_path / "vww_96.keras"
    shutil.copyfile(models.paths.sequential, source)
    out = tmp_path / "out"
    events = []
    manifest = convert(source, out, formats=("tflite", "onnx"), modes=("fp32", "int8"), calibration=models.x,
                       isolate=False, progress=events.append)
    assert [entry["path"] for entry in manifest["artifacts"]] == [
        "vww_96.fp32.tflite", "vww_96.int8.tflite", "vww_96.fp32.onnx", "vww_96.int8.onnx"]
    assert all((out / entry["path"]).is_file() for entry in manifest["artifacts"])
    assert json.loads((out / "manifest.json").read_text()) == manifest  # the staged manifest was rewritten
    _check_recommendation(manifest, out)
    messages = [event.message for event in events if event.stage == "bench"]
    assert messages[0].startswith("measuring 4 artifact(s) × ")
    assert messages[-1].startswith(f"recommended: {manifest['recommended']['path']}, ")
    assert "`edgeml select` measures again on the device" in messages[-1]


def test_a_failed_artifact_is_never_recommended_and_the_table_marks_the_choice(models, tmp_path):
    out = tmp_path / "out"
    result = invoke("convert", models.paths.sequential, "--int8", "--to", "tflite", "--calibration",
                    models.paths.features, "--min-cosine", "1.0", "--no-repair", "-o", out)
    assert result.exit_code == 1, result.stderr  # int8 misses the impossible gate: files and manifest kept
    manifest = json.loads((out / "manifest.json").read_text())
    assert _passing(manifest) == {"sequential.fp32.tflite"}
    assert manifest["recommended"]["path"] == "sequential.fp32.tflite"
    _check_recommendation(manifest, out)
    marked = [line for line in result.stdout.splitlines() if line.startswith("│ ★")]  # the table's rows
    assert len(marked) == 1 and "sequential.fp32.tflite" in marked[0] and "ok" in marked[0]
    threads = manifest["recommended"]["threads"]
    assert (f"★ recommended: sequential.fp32.tflite, {threads} thread{'' if threads == 1 else 's'}, p50 "
            in result.stdout)
    assert "the fastest passing artifact, ties go to the smaller file" in result.stdout


def test_no_passing_artifact_means_no_recommendation(models, tmp_path):
    out = tmp_path / "out"
    events = []
    with pytest.raises(GatesFailed) as failed:
        convert(models.paths.sequential, out, formats=("tflite",), modes=("fp32",), fp32_tolerance=1e-12,
                validate_data=models.x, isolate=False, progress=events.append)
    assert failed.value.manifest["recommended"] is None
    assert json.loads((out / "manifest.json").read_text())["recommended"] is None
    assert read_conversion_manifest(out).recommended_path is None
    assert any(event.level == "note" and "no recommended artifact: none passed validation" in event.message
               for event in events)


def test_no_recommend_measures_nothing_and_json_shows_the_manifest(models, tmp_path):
    out = tmp_path / "out"
    result = invoke("convert", models.paths.saved_model, "--to", "onnx", "--no-recommend", "--json", "-o", out)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert "recommended" not in manifest and "recommended" not in json.loads((out / "manifest.json").read_text())
    assert "measuring" not in result.stderr
    assert "--no-recommend Skip the speed measurement" in " ".join(invoke("convert", "--help").output.split())
