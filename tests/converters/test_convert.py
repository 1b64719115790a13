"""Real conversions of tiny models: TensorFlow, tf2onnx, ONNX Runtime and LiteRT, no mocks.

Most tests call the Python API in this process (`isolate=False`, TensorFlow is already imported);
the CLI tests go through click's CliRunner and the default child-process conversion.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from edgeml_converters import (
    CalibrationError,
    ConversionError,
    FlexOpsRequired,
    OutputDirError,
    UnsafeModelError,
    convert,
)
from edgeml_runtime import ModelLoadError

from tests.support.cli import invoke

pytestmark = pytest.mark.slow


def read_tree(folder):
    """Every file under `folder` with its bytes, to prove a directory was left untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _convert(source, out, **kwargs):
    return convert(source, out, isolate=False, **kwargs)


def _artifact(manifest, path):
    return next(entry for entry in manifest["artifacts"] if entry["path"] == path)


def test_sequential_every_mode_validates_and_the_files_load(models, tmp_path):
    out = tmp_path / "out"
    manifest = _convert(models.paths.sequential, out, formats=("tflite", "onnx", "ort"),
                        modes=("fp32", "fp16", "dynamic", "int8", "int16x8"), calibration=models.x)
    names = sorted(entry["path"] for entry in manifest["artifacts"])
    expected = [f"sequential.{m}.tflite" for m in ("fp32", "fp16", "dynamic", "int8", "int16x8")]
    expected += [f"sequential.{m}.{ext}" for m in ("fp32", "fp16", "dynamic", "int8") for ext in ("onnx", "ort")]
    assert names == sorted(expected)
    assert manifest["schema"] == "edgeml.manifest/1"
    assert manifest["source"]["kind"] == "keras"
    assert manifest["source"]["sha256"] == hashlib.sha256(models.paths.sequential.read_bytes()).hexdigest()
    # 400 samples, 300 taken for calibration: the other 100 are held back for validation.
    calibration = manifest["calibration"]
    assert (calibration["source"], calibration["samples"]) == ("array", 300)
    # No range declared or recorded: the calibration arrays' own min/max is the input range, used as given.
    assert calibration["input_range"]["features"]["from"] == "calibration data (min/max)"
    assert calibration["input_range"]["features"]["high"] == pytest.approx(float(models.x.max()))
    assert json.loads((out / "manifest.json").read_text()) == manifest
    for entry in manifest["artifacts"]:
        data = (out / entry["path"]).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["validation"]["passed"], entry
        assert entry["validation"]["samples"] == 100
    # fp32 reproduces Keras up to float rounding (gate: 1e-4 of the output range).
    assert _artifact(manifest, "sequential.fp32.tflite")["validation"]["relative_max_abs_diff"] <= 1e-4
    int8 = _artifact(manifest, "sequential.int8.tflite")
    assert int8["inputs"][0]["dtype"] == "int8" and int8["inputs"][0]["quantization"]["scale"] > 0
    assert _artifact(manifest, "sequential.int16x8.tflite")["inputs"][0]["dtype"] == "int16"
    assert not list(tmp_path.glob(".out.staging-*"))

    # The files load in the backends themselves, not only through edgeml_runtime.
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    fresh = np.random.default_rng(5).normal(size=(16, 6)).astype("float32")
    expected_probs = np.asarray(models.sequential(fresh))
    session = onnxruntime.InferenceSession(str(out / "sequential.fp32.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"]
    onnx_probs = session.run(None, {"features": fresh})[0]
    np.testing.assert_allclose(onnx_probs, expected_probs, atol=1e-5)  # fp32: float rounding only
    interpreter = Interpreter(model_path=str(out / "sequential.fp32.tflite"))
    runner = interpreter.get_signature_runner()
    tflite_probs = next(iter(runner(features=fresh).values()))
    np.testing.assert_allclose(tflite_probs, expected_probs, atol=1e-5)  # fp32: float rounding only
    ort_session = onnxruntime.InferenceSession(str(out / "sequential.int8.ort"), providers=["CPUExecutionProvider"])
    int8_probs = ort_session.run(None, {"features": fresh})[0]
    # int8: probabilities within a few quantization steps (1/256 of the [0, 1] output range each).
    assert np.max(np.abs(int8_probs - expected_probs)) < 0.05


def test_int8_float_io_keeps_float_inputs(models, tmp_path):
    manifest = _convert(models.paths.sequential, tmp_path / "out", formats=("tflite",), modes=("int8",),
                        calibration=models.x, float_io=True, calibration_samples=50)
    entry = _artifact(manifest, "sequential.int8.tflite")
    assert entry["inputs"][0]["dtype"] == "float32" and entry["outputs"][0]["dtype"] == "float32"
    assert manifest["calibration"]["samples"] == 50


def test_functional_two_inputs_two_outputs_keep_their_names(models, tmp_path):
    out = tmp_path / "out"
    manifest = _convert(models.paths.functional, out, modes=("fp32", "dynamic"))
    import edgeml_runtime

    rng = np.random.default_rng(1)
    feeds = {"a": rng.normal(size=(5, 4)).astype("float32"), "b": rng.normal(size=(5, 3)).astype("float32")}
    scores, value = (np.asarray(t) for t in models.functional([feeds["a"], feeds["b"]]))
    for path in ("functional.fp32.tflite", "functional.fp32.onnx"):
        entry = _artifact(manifest, path)
        assert sorted(spec["name"] for spec in entry["inputs"]) == ["a", "b"]
        assert sorted(spec["name"] for spec in entry["outputs"]) == ["scores", "value"]
        result = edgeml_runtime.load(out / path).run(feeds)
        np.testing.assert_allclose(result["scores"], scores, atol=1e-5)  # fp32: float rounding only
        np.testing.assert_allclose(result["value"], value, atol=1e-5)
    assert manifest["calibration"] is None  # no int8 mode, no calibration
    assert _artifact(manifest, "functional.dynamic.onnx")["validation"]["data"].startswith("synthetic")


def test_subclassed_model_with_dynamic_batch(models, tmp_path):
    out = tmp_path / "out"
    manifest = _convert(models.paths.subclassed, out)
    import edgeml_runtime

    for path in ("subclassed.fp32.tflite", "subclassed.fp32.onnx"):
        assert _artifact(manifest, path)["inputs"][0]["shape"] == [None, 5]
        model = edgeml_runtime.load(out / path)
        for batch in (1, 7):
            x = np.linspace(-1, 1, batch * 5, dtype="float32").reshape(batch, 5)
            output = next(iter(model.run(x).values()))
            np.testing.assert_allclose(output, np.asarray(models.subclassed(x)), atol=1e-5)


def test_keras2_h5_with_depthwise_conv_loads_through_tf_keras(models, tmp_path):
    events = []
    manifest = _convert(models.paths.legacy, tmp_path / "out", formats=("tflite",), progress=events.append)
    assert manifest["source"]["kind"] == "h5"
    assert manifest["source"]["loader"].startswith("tf_keras")
    assert any(event.level == "note" and "loaded with tf_keras" in event.message for event in events)
    assert manifest["artifacts"][0]["validation"]["passed"]


def test_saved_model_directory(models, tmp_path):
    manifest = _convert(models.paths.saved_model, tmp_path / "out", modes=("fp32", "fp16"))
    assert manifest["source"]["kind"] == "saved_model"
    entry = _artifact(manifest, "saved_model.fp32.onnx")
    assert entry["inputs"][0]["name"] == "x" and entry["outputs"][0]["name"] == "y"
    assert all(entry["validation"]["passed"] for entry in manifest["artifacts"])


def test_lambda_layer_is_refused_unless_unsafe(models, tmp_path):
    with pytest.raises(UnsafeModelError, match="Lambda layer.*--unsafe"):
        _convert(models.paths.lam, tmp_path / "refused", formats=("tflite",))
    assert not (tmp_path / "refused").exists()
    manifest = _convert(models.paths.lam, tmp_path / "out", formats=("tflite",), unsafe=True)
    assert manifest["artifacts"][0]["validation"]["passed"]


def test_flex_ops_are_refused_with_their_names_and_existing_output_stays(models, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"artifacts": [{"path": "model.fp32.tflite"}]}')
    (out / "model.fp32.tflite").write_bytes(b"previous model")
    before = read_tree(out)
    with pytest.raises(FlexOpsRequired, match="MatrixInverse") as caught:
        _convert(models.paths.flex, out, formats=("tflite",))
    assert caught.value.ops == ["MatrixInverse"]
    assert read_tree(out) == before  # the failed conversion left the existing output untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # and no staging directory behind

    events = []
    manifest = _convert(models.paths.flex, out, formats=("tflite",), allow_flex=True, progress=events.append)
    entry = manifest["artifacts"][0]
    assert entry["flex_ops"] == ["MatrixInverse"]
    assert any(event.level == "warning" and "MatrixInverse" in event.message for event in events)
    # LiteRT cannot run Flex ops, so the artifact is reported as not validated (and the run still succeeds).
    assert entry["validation"]["passed"] is False and "needs Flex ops MatrixInverse" in entry["validation"]["error"]


def test_nan_and_wrong_shape_calibration_are_rejected_before_converting(models, tmp_path):
    bad = models.x.copy()
    bad[7, 2] = np.nan
    with pytest.raises(CalibrationError, match=r"1 NaN/Inf value\(s\) \(first in sample 7\)"):
        _convert(models.paths.sequential, tmp_path / "nan", formats=("tflite",), modes=("int8",), calibration=bad)
    with pytest.raises(CalibrationError, match=r"shape \(400, 5\), the model needs \(N, 6\)"):
        _convert(models.paths.sequential, tmp_path / "shape", formats=("tflite",), modes=("int8",),
                 calibration=models.x[:, :5])
    assert not (tmp_path / "nan").exists() and not (tmp_path / "shape").exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated_h5", "truncated_keras", "not_a_model", "no_signatures"])
def test_broken_sources_give_clear_errors(models, tmp_path, damage):
    if damage == "truncated_h5":
        source = tmp_path / "model.h5"
        source.write_bytes(models.paths.legacy.read_bytes()[:3000])
        expected = "corrupt or truncated"
    elif damage == "truncated_keras":
        source = tmp_path / "model.keras"
        source.write_bytes(models.paths.sequential.read_bytes()[:2000])
        expected = "corrupt or truncated"
    elif damage == "not_a_model":
        source = tmp_path / "notes.txt"
        source.write_text("hello")
        expected = "not a model file"
    else:
        source = models.paths.no_signatures
        expected = "has no signatures"
    with pytest.raises(ModelLoadError, match=expected):
        _convert(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_output_directory_that_is_a_file(models, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    with pytest.raises(OutputDirError, match="is an existing file"):
        _convert(models.paths.sequential, target)
    assert target.read_text() == "keep me"


def test_calibration_and_labels_next_to_the_model_are_used(models, tmp_path):
    folder = tmp_path / "trained"
    folder.mkdir()
    shutil.copy(models.paths.sequential, folder / "model.keras")
    np.savez(folder / "calibration.npz", features=models.x[:120])
    (folder / "labels.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    events = []
    manifest = _convert(folder / "model.keras", None, formats=("onnx",), modes=("int8",), progress=events.append)
    out = tmp_path / "trained" / "model-edgeml"
    assert manifest["calibration"]["source"] == str(folder / "calibration.npz")
    assert manifest["calibration"]["samples"] == 96  # every fifth of 120 samples is held back for validation
    assert any(event.level == "note" and "calibration data found next to the model" in event.message
               for event in events)
    assert manifest["metadata"] == {"labels": "labels.json"}
    assert json.loads((out / "labels.json").read_text())["classes"] == ["a", "b", "c"]
    assert _artifact(manifest, "model.int8.onnx")["validation"]["samples"] == 24


def test_run_isolated_turns_a_native_crash_into_an_error():
    from edgeml_converters.isolation import run_isolated

    from tests.converters.converters_crash_helper import abort_after_progress

    with pytest.raises(ConversionError, match=r"died \(signal SIGABRT\) during 'converting the crashing op'"):
        run_isolated(abort_after_progress, {})


def test_run_isolated_passes_progress_events_from_the_child():
    from edgeml_converters.isolation import run_isolated
    from edgeml_runtime.progress import ProgressEvent

    from tests.converters.converters_crash_helper import count_samples

    events = []
    result = run_isolated(count_samples, {"total": 3}, events.append)
    assert result["samples"] == 3 and result["pid"] != os.getpid()  # it really ran in another process
    assert events == [
        ProgressEvent("calibrate", "calibrating", 1, 3),
        ProgressEvent("calibrate", "calibrating", 2, 3),
        ProgressEvent("calibrate", "calibrating", 3, 3),
        ProgressEvent("export", "a warning from the child", level="warning"),
    ]


# --- the command line (CliRunner; the conversion runs in a child process as for users) -------------


def _cli(args):
    return invoke(*args)


def test_cli_int8_without_calibration_exits_2_and_explains(models, tmp_path):
    result = _cli(["convert", str(models.paths.sequential), "--int8", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "needs representative data" in result.stderr and "--calibration synthetic" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_failed_gate_exits_1_and_keeps_files(models, tmp_path):
    out = tmp_path / "out"
    result = _cli(["convert", str(models.paths.sequential), "--int8", "--to", "tflite",
                   "--calibration", str(models.paths.features), "--min-cosine", "1.0", "--no-repair", "-o", str(out)])
    assert result.exit_code == 1, result.stderr
    assert "failed validation: sequential.int8.tflite" in result.stderr
    assert "FAILED" in result.stdout and "sequential.fp32.tflite" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert _artifact(manifest, "sequential.fp32.tflite")["validation"]["passed"] is True
    assert _artifact(manifest, "sequential.int8.tflite")["validation"]["passed"] is False
    assert (out / "sequential.int8.tflite").is_file()


def test_cli_json_output(models, tmp_path):
    result = _cli(["convert", str(models.paths.saved_model), "--to", "onnx", "--json", "-o", str(tmp_path / "o")])
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert [entry["path"] for entry in manifest["artifacts"]] == ["saved_model.fp32.onnx"]
    assert manifest["recommended"]["path"] == "saved_model.fp32.onnx"  # measured on this machine, in the JSON too


def test_piped_cli_prints_one_line_per_step_and_json_stays_clean(models, tmp_path):
    """As in `edgeml convert ... --json | jq` or a CI log: stderr is a pipe, not a terminal."""
    import subprocess
    import sys

    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "edgeml", "convert", str(models.paths.saved_model), "--int8", "--calibration",
         "synthetic", "--calibration-samples", "50", "--json", "-o", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)  # nothing but the manifest on stdout
    assert manifest == json.loads((out / "manifest.json").read_text())
    lines = result.stderr.splitlines()
    assert lines[0].startswith("loaded saved_model with tf.saved_model "), result.stderr
    for step in ("running the original model on 64 validation samples",
                 "converting to TFLite fp32", "validating saved_model.fp32.tflite", "converting to TFLite int8",
                 "validating saved_model.int8.tflite", "converting to ONNX (tf2onnx)", "making ONNX int8",
                 "validating saved_model.int8.onnx", f"wrote 4 artifact(s) and manifest.json to {out}"):
        assert step in lines, (step, result.stderr)
    # A counter prints once, when it is complete (50 samples are counted at 25 and 50).
    assert lines.count("calibrating TFLite int8 [50/50]") == 1 and lines.count("calibrating ONNX int8 [50/50]") == 1
    assert "[25/50]" not in result.stderr
    assert not any("\x1b" in line for line in lines)  # no live status or colour codes in a pipe


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="switches to user 'nobody' (needs root)")
def test_no_write_permission(models):
    import tempfile

    shared = tempfile.mkdtemp(prefix="edgeml-perm-")
    try:
        os.chmod(shared, 0o755)  # readable by everyone, writable by root only
        model = os.path.join(shared, "model.keras")
        shutil.copy(models.paths.sequential, model)
        os.chmod(model, 0o644)
        os.seteuid(65534)  # act as 'nobody' for the file system checks; switched back below
        try:
            with pytest.raises(OutputDirError, match=r"no write permission in .*edgeml-perm-.*-o"):
                convert(model, isolate=False)
        finally:
            os.seteuid(0)
        assert sorted(os.listdir(shared)) == ["model.keras"]
    finally:
        shutil.rmtree(shared)


# --- SavedModels tf.saved_model.load rejects, --debug, near-ties in the agreement gate ---------------


def test_saved_model_that_tf_saved_model_load_rejects_still_converts(models, tmp_path):
    import tensorflow as tf

    source = models.paths.tf1_multi_metagraph
    with pytest.raises(ValueError, match="requires a `tags=` argument"):
        tf.saved_model.load(str(source))  # the fixture really is one that `load` rejects
    events = []
    out = tmp_path / "out"
    manifest = _convert(source, out, progress=events.append)
    assert manifest["source"]["loader"].startswith("tf.compat.v1.saved_model.loader")
    assert "tf.saved_model.load rejected it" in manifest["source"]["loader"]
    assert any("loaded its 'serve' MetaGraph with the TF1 loader" in event.message for event in events)
    import edgeml_runtime

    x = np.linspace(-2, 2, 7 * 4, dtype="float32").reshape(7, 4)
    for path in ("tf1_multi_metagraph.fp32.tflite", "tf1_multi_metagraph.fp32.onnx"):
        entry = _artifact(manifest, path)
        assert entry["validation"]["passed"], entry
        assert [s["name"] for s in entry["inputs"]] == ["x"] and [s["name"] for s in entry["outputs"]] == ["y"]
        result = edgeml_runtime.load(out / path).run({"x": x})["y"]
        np.testing.assert_allclose(result, np.maximum(x @ models.tf1_weights, 0), atol=1e-5)  # fp32: rounding only


def _corrupt_saved_model(tmp_path):
    folder = tmp_path / "broken_saved_model"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x01garbage, not a SavedModel protobuf")
    return folder


def test_cli_error_is_one_line_and_debug_shows_the_child_traceback(tmp_path):
    source = _corrupt_saved_model(tmp_path)
    plain = _cli(["convert", str(source), "--to", "tflite", "-o", str(tmp_path / "a")])
    assert plain.exit_code == 2
    lines = [line for line in plain.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot load the SavedModel"), plain.stderr
    assert "Traceback" not in plain.stderr + plain.stdout

    debug = _cli(["--debug", "convert", str(source), "--to", "tflite", "-o", str(tmp_path / "b")])
    assert debug.exit_code == 2
    assert "the conversion process's traceback:" in debug.stderr
    # Frames that only ever run in the child process (the parent never loads the model).
    assert "_load_saved_model_tf1" in debug.stderr and "build_artifacts" in debug.stderr
    assert "error: cannot load the SavedModel" in debug.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def _near_tie_classifier(path, x):
    """A classifier that has not yet learned to tell classes 0 and 1 apart (their weights differ by 1e-4),
    as after light training: wherever one of them wins, the other is a hair behind. Class 2 wins on 85%
    of the samples by a clear margin."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16,), name="features"), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(3, name="scores")])
    kernel, bias = model.layers[1].get_weights()
    rng = np.random.default_rng(1)
    kernel[:, 1] = kernel[:, 0] + 1e-4 * rng.normal(size=128)
    kernel[:, 2] = 0.1 * rng.normal(size=128)
    hidden_kernel, hidden_bias = model.layers[0].get_weights()
    logits = np.maximum(x @ hidden_kernel + hidden_bias, 0) @ kernel
    bias[2] = np.quantile(logits[:, :2].max(axis=1) - logits[:, 2], 0.85)
    model.layers[1].set_weights([kernel, bias])
    model.save(path)


def test_near_ties_pass_the_decisive_agreement_gate_and_real_loss_still_fails(tmp_path):
    from edgeml_converters import GatesFailed

    x = np.random.default_rng(0).normal(size=(400, 16)).astype("float32")
    source = tmp_path / "near_tie.keras"
    _near_tie_classifier(source, x)

    # ONNX dynamic quantizes the last layer's weights, which flips many 0-vs-1 near-ties.
    manifest = _convert(source, tmp_path / "tie", formats=("onnx",), modes=("dynamic",), validate_data=x)
    check = _artifact(manifest, "near_tie.dynamic.onnx")["validation"]
    assert check["cosine"] > 0.999  # the outputs barely moved...
    assert check["top1_agreement"] < 0.97  # ...yet the raw figure misses the 0.97 gate (measured 93.75%)
    assert check["decisive_top1_agreement"] == 1.0  # every flip was a near-tie within the noise
    # Decisive = margin beyond the noise band; the near-ties are the ~15% where class 0 or 1 wins.
    assert 0.75 * 400 <= check["decisive_samples"] <= 0.9 * 400
    assert check["tie_margin"] > 0 and check["passed"] is True

    # A real loss: int8 calibrated on inputs 20x too small clips every activation. With the cosine gate
    # switched off, the agreement gate alone must catch it (too few decisive samples, so raw gates).
    with pytest.raises(GatesFailed, match="near_tie.int8.onnx") as caught:
        _convert(source, tmp_path / "loss", formats=("onnx",), modes=("int8",), calibration=x * 0.05,
                 validate_data=x, min_cosine=-1.0, repair=False)
    check = _artifact(caught.value.manifest, "near_tie.int8.onnx")["validation"]
    assert check["passed"] is False and check["top1_agreement"] < 0.95


def test_cli_table_shows_top1_only_for_class_scores(models, tmp_path):
    """A softmax classifier's table has a top-1 column; a model with raw (non-score) outputs has none:
    its fidelity is cosine and max diff."""
    scores = _cli(["convert", str(models.paths.sequential), "--to", "tflite", "-o", str(tmp_path / "scores")])
    raw = _cli(["convert", str(models.paths.legacy), "--to", "tflite", "-o", str(tmp_path / "raw")])
    assert scores.exit_code == 0 and raw.exit_code == 0, scores.stderr + raw.stderr
    assert "top-1" in scores.stdout and "cosine" in scores.stdout
    assert "top-1" not in raw.stdout and "cosine" in raw.stdout
