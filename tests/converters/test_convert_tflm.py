"""`edgeml convert MODEL --int8 --to tflm`: TensorFlow Lite Micro sources from a Keras model, end to end, with the
int8 .tflite they embed, validated like it; and what the rest of edgeml (bench, Predictor, bundle) does with a
conversion folder that holds them. One conversion for the module (`converted`); the GELU test makes a second."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="tflite-micro is not installed: pip install 'edgeml-converters[tflm]'")

from edgeml_converters import ConvertOptions, convert  # noqa: E402
from edgeml_converters.output_dir import publish  # noqa: E402
from edgeml_converters.tflm import measure_arena, read_model  # noqa: E402
from edgeml_runtime import BackendNotInstalled, EdgeMLError, ModelLoadError, Predictor  # noqa: E402
from edgeml_runtime.locate import locate  # noqa: E402

from tests.support.cli import invoke  # noqa: E402
from tests.support.marks import unavailable  # noqa: E402

pytestmark = pytest.mark.slow

SAMPLES, CALIBRATION = 200, 150  # --calibration-samples 150: the other 50 are held back for validation
TFLM_FILES = ["cnn.int8_model_data.cc", "cnn.int8_model_data.h", "cnn.int8_ops.h", "cnn.int8_arena.h",
              "cnn.int8_tflm.md"]


@pytest.fixture(scope="module")
def keras_models(tmp_path_factory):
    """A small trained image classifier (its top-1 agreement means something) with calibration data, and an MLP
    with a GELU activation, an operator TFLM has no kernel for."""
    import keras

    root = tmp_path_factory.mktemp("tflm-keras")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, size=(SAMPLES, 12, 12, 1)).astype("float32")
    y = (x[:, :6].mean(axis=(1, 2, 3)) > x[:, 6:].mean(axis=(1, 2, 3))).astype(int) * 2 + (x[:, 5, 5, 0] > 0.5)
    cnn = keras.Sequential([
        keras.Input((12, 12, 1), name="image"),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.DepthwiseConv2D(3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4, activation="softmax"),
    ])
    cnn.compile("adam", "sparse_categorical_crossentropy")
    cnn.fit(x, y, epochs=8, verbose=0)
    cnn.save(root / "cnn.keras")
    np.save(root / "images.npy", x)
    gelu = keras.Sequential([keras.Input((10,)), keras.layers.Dense(8), keras.layers.Activation("gelu"),
                             keras.layers.Dense(3)])
    gelu.save(root / "gelu.keras")
    np.save(root / "features.npy", rng.normal(size=(120, 10)).astype("float32"))
    return root


@pytest.fixture(scope="module")
def converted(keras_models, tmp_path_factory):
    """`edgeml convert cnn.keras --int8 --to tflm --json`, as a user runs it (the conversion in its child process)."""
    out = tmp_path_factory.mktemp("tflm-out") / "out"
    result = invoke("convert", keras_models / "cnn.keras", "--int8", "--to", "tflm", "--calibration",
                    keras_models / "images.npy", "--calibration-samples", CALIBRATION, "-o", out, "--json",
                    check_exit=0)
    return out, json.loads(result.stdout)


def tflm_entry(manifest) -> dict:
    return next(entry for entry in manifest["artifacts"] if entry["format"] == "tflm")


def test_tflm_brings_the_int8_tflite_and_the_sources(converted):
    out, manifest = converted
    assert [entry["path"] for entry in manifest["artifacts"]] == [
        "cnn.fp32.tflite", "cnn.int8.tflite", "cnn.int8_model_data.cc"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    entry = tflm_entry(manifest)
    assert entry["format"] == "tflm" and entry["quantization"] == "int8" and entry["files"] == TFLM_FILES
    assert sorted(p.name for p in out.iterdir()) == sorted(  # report.html: the command's HTML report
        ["manifest.json", "cnn.fp32.tflite", "cnn.int8.tflite", "report.html", *TFLM_FILES])
    assert not list(out.parent.glob(".out.staging-*"))
    # bytes and sha256 describe `path` (the .cc), as for every artifact; model_bytes the model it embeds.
    source = (out / entry["path"]).read_bytes()
    assert entry["bytes"] == len(source) and entry["sha256"] == hashlib.sha256(source).hexdigest()
    tflite = out / "cnn.int8.tflite"
    assert entry["model"] == tflite.name and entry["model_bytes"] == tflite.stat().st_size
    assert entry["inputs"][0]["name"] == "image" and entry["inputs"][0]["dtype"] == "int8"


def test_the_arena_is_measured_and_in_the_manifest(converted):
    out, manifest = converted
    entry = tflm_entry(manifest)
    measured = measure_arena(out / "cnn.int8.tflite").required_bytes
    # DESIGN.md: `arena_bytes`, the figure in _arena.h: TFLM's allocator's own figure plus the stated margin.
    assert measured <= entry["arena_bytes"] <= 1.5 * measured + 4096
    assert entry["arena"]["measured_bytes"] == measured
    assert f"kTensorArenaSize = {entry['arena_bytes']};" in (out / "cnn.int8_arena.h").read_text()
    # ... and its operator list, exactly the operators of the embedded model.
    assert entry["ops"] == sorted(read_model(out / "cnn.int8.tflite").ops) and "CONV_2D" in entry["ops"]
    assert entry["op_resolver"]["size"] == len(entry["ops"])


def test_validation_runs_tflm_against_the_original_with_the_int8_gates(converted):
    _, manifest = converted
    tflite = next(e for e in manifest["artifacts"] if e["path"] == "cnn.int8.tflite")["validation"]
    check = tflm_entry(manifest)["validation"]
    assert check["passed"] is True
    assert check["samples"] == tflite["samples"] == SAMPLES - CALIBRATION and check["data"] == tflite["data"]
    assert check["runner"].startswith("tflite-micro") and check["litert"].startswith("edgeml_runtime/")
    # The same gate as the int8 .tflite, plus TFLM against LiteRT in quanta (see tflm.QUANTA_TOLERANCE).
    assert check["gate"] == f"{tflite['gate']}, TFLM vs LiteRT <= 2 quanta"
    assert 0 <= check["max_quanta_diff"] <= 2 and check["tolerance_quanta"] == 2
    # TFLM and LiteRT share the int8 reference arithmetic: against the original, they lose about the same. A
    # requantization step of difference on an output moves it by one output scale (1/256 for the softmax).
    assert check["cosine"] >= 0.98 and check["top1_agreement"] >= 0.9
    assert abs(check["max_abs_diff"] - tflite["max_abs_diff"]) <= 2 / 256 + 1e-6


def test_the_model_source_compiles_standalone(converted, tmp_path):
    compiler = shutil.which("g++")
    if compiler is None:
        unavailable("g++ is not installed (apt-get install g++)")
    out, _ = converted
    done = subprocess.run([compiler, "-std=c++17", "-c", str(out / "cnn.int8_model_data.cc"), "-o",
                           str(tmp_path / "model_data.o")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_summary_table_shows_the_arena(converted):
    from rich.console import Console

    from edgeml.commands.convert import summary_table
    from edgeml.console import format_size

    _, manifest = converted
    console = Console(file=io.StringIO(), width=200)
    console.print(summary_table(manifest))
    row = next(line for line in console.file.getvalue().splitlines() if "cnn.int8_model_data.cc" in line)
    entry = tflm_entry(manifest)
    assert "tflm" in row and format_size(entry["arena_bytes"]) in row and format_size(entry["model_bytes"]) in row
    assert re.search(r"ok, \d quant(um|a) vs LiteRT", row)


def test_bench_and_predictor_use_the_model_files_only(converted):
    out, _ = converted
    result = invoke("bench", out, "--runs", 3, "--json", check_exit=0)
    benched = json.loads(result.stdout)
    assert sorted(report["model"].rsplit("/", 1)[-1] for report in benched) == ["cnn.fp32.tflite",
                                                                                 "cnn.int8.tflite"]
    predictor = Predictor.from_manifest(out)
    assert predictor.predict(np.zeros((12, 12, 1), "float32")).output.shape == (4,)
    assert locate(out, artifact="int8").model.name == "cnn.int8.tflite"
    with pytest.raises(ModelLoadError, match="no artifact matches 'tflm'"):
        locate(out, artifact="tflm")  # sources are not something the runtime can load


def test_a_bundle_leaves_the_sources_out(converted, tmp_path):
    out, manifest = converted
    for extra, model in (([], manifest["recommended"]["path"]), (["--all"], "cnn.int8.tflite")):
        bundle = tmp_path / f"b{len(extra)}.tar.gz"  # the default bundle holds the recommended model; --all, all
        invoke("bundle", out, "--device", "rpi4", "--no-wheels", *extra, "-o", bundle, check_exit=0)
        with tarfile.open(bundle) as tar:
            names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
        assert f"models/{model}" in names and "models/manifest.json" in names
        assert not [name for name in names if name.endswith((".cc", ".h", "_tflm.md"))]


def test_a_bundle_for_a_microcontroller_says_to_convert_to_tflm(converted, tmp_path):
    out, _ = converted
    result = invoke("bundle", out, "--device", "rpi-pico2", "-o", tmp_path / "b.tar.gz", check_exit=2)
    assert "microcontroller" in result.output and "--to tflm" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "b.tar.gz").exists()


def test_tflm_needs_full_integer_quantization(keras_models, tmp_path):
    for extra in ([], ["--quantize", "int16x8"]):
        result = invoke("convert", keras_models / "cnn.keras", "--to", "tflm", *extra, "-o", tmp_path / "x",
                        check_exit=2)
        assert "--to tflm needs full-integer quantization: add --int8" in result.output
    result = invoke("convert", keras_models / "cnn.keras", "--to", "tflm", "--int8", "--float-io", "-o",
                    tmp_path / "x", check_exit=2)
    assert "drop --float-io" in result.output
    assert not (tmp_path / "x").exists()
    # The API says the same, and "tflm" brings the .tflite its sources embed.
    with pytest.raises(EdgeMLError, match="--int8"):
        ConvertOptions(formats=("tflm",))
    assert ConvertOptions(formats=("tflm",), modes=("fp32", "int8")).formats == ("tflite", "tflm")
    assert "tflm" in invoke("convert", "--help", check_exit=0).output


def test_an_operator_tflm_lacks_keeps_the_tflite_files_and_names_it(keras_models, tmp_path):
    out = tmp_path / "out"
    result = invoke("convert", keras_models / "gelu.keras", "--int8", "--to", "tflm", "--calibration",
                    keras_models / "features.npy", "-o", out, "--json", check_exit=2)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "TensorFlow Lite Micro has no kernel for GELU" in errors[0]
    assert f"Written to {out}: gelu.fp32.tflite, gelu.int8.tflite, manifest.json" in errors[0]
    assert "Traceback" not in result.output
    # What could be made is written, listed in the manifest (also on stdout) and usable.
    manifest = json.loads(result.stdout)
    assert [entry["path"] for entry in manifest["artifacts"]] == ["gelu.fp32.tflite", "gelu.int8.tflite"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in out.iterdir()) == ["gelu.fp32.tflite", "gelu.int8.tflite", "manifest.json",
                                                     "report.html"]


def test_without_tflite_micro_convert_says_what_to_install_before_converting(keras_models, monkeypatch, tmp_path):
    for module in [name for name in sys.modules if name == "tflite_micro" or name.startswith("tflite_micro.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "tflite_micro", None)
    with pytest.raises(BackendNotInstalled, match=r"pip install 'edgeml-converters\[tflm\]'"):
        convert(keras_models / "cnn.keras", tmp_path / "out", formats=("tflm",), modes=("fp32", "int8"),
                calibration="synthetic")
    assert list(tmp_path.iterdir()) == []  # refused before any staging or conversion


def test_a_later_run_without_tflm_removes_the_old_sources(tmp_path):
    # publish() drops what an earlier run made and this one did not: for TFLM, every file the entry lists.
    out, staging = tmp_path / "out", tmp_path / "staging"
    out.mkdir()
    staging.mkdir()
    for name in ["cnn.int8.tflite", *TFLM_FILES, "notes.txt"]:
        (out / name).write_text("old")
    (out / "manifest.json").write_text(json.dumps({"artifacts": [
        {"path": "cnn.int8.tflite"}, {"path": TFLM_FILES[0], "format": "tflm", "files": TFLM_FILES}]}))
    (staging / "cnn.int8.tflite").write_text("new")
    (staging / "manifest.json").write_text(json.dumps({"artifacts": [{"path": "cnn.int8.tflite"}]}))
    publish(staging, out)
    assert sorted(p.name for p in out.iterdir()) == ["cnn.int8.tflite", "manifest.json", "notes.txt"]
