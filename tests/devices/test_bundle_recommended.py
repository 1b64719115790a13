"""`edgeml bundle DIR` from a conversion: ONE model (the measured recommendation, when the device has a backend
for it), the manifest restricted to it, labels.json, and only the wheels of that model's backend; `--artifact`
picks another, `--all` keeps every artifact and every backend's wheels as before. The lean bundle deploys (the
on-device agent verifies and smoke-tests it) over a real sshd, and what it installed is what serves it."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile

import pytest
from edgeml_runtime.documents import read_conversion_manifest

from tests.support.cli import edgeml
from tests.support.conversions import CLASSES, conversion_dir
from tests.support.models import MLP_FP32, MLP_INT8, MLP_ONNX

pytestmark = pytest.mark.slow  # downloads wheels on the first run (cached in ~/.cache/edgeml/wheels)


def bundle(source, out, *options, check_exit=0):
    done = edgeml("bundle", source, "--device", "generic-x86_64", "-o", out, "--json", *options,
                  check_exit=check_exit)
    return json.loads(done.stdout) if check_exit == 0 else done


def members(path) -> dict:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if "/" in m.name}


def test_default_bundle_holds_the_recommended_model_and_its_backend_only(tmp_path):
    out = conversion_dir(tmp_path / "converted")  # recommends mlp_fp32.onnx, listed last
    lean = bundle(out, tmp_path / "lean.tar.gz")
    everything = bundle(out, tmp_path / "all.tar.gz", "--all")

    assert [m["path"] for m in lean["manifest"]["models"]] == [f"models/{MLP_ONNX.name}"]
    assert lean["manifest"]["backends"] == ["onnxruntime"]
    assert lean["chosen"]["recommended"] and lean["chosen"]["path"] == MLP_ONNX.name
    files = members(tmp_path / "lean.tar.gz")
    wheels = [name for name in files if name.startswith("wheels/")]
    assert any(name.startswith("wheels/onnxruntime-") for name in wheels)
    assert not any(name.startswith(("wheels/ai_edge_litert", "wheels/tflite_runtime")) for name in wheels)
    assert {name for name in files if name.startswith("models/")} == {
        "models/manifest.json", "models/labels.json", f"models/{MLP_ONNX.name}"}
    assert b"ai-edge-litert" not in files["requirements.txt"]

    # The manifest travels restricted to the one model, with its recommendation, and reads back as valid.
    restricted = tmp_path / "unpacked"
    restricted.mkdir()
    for name in ("manifest.json", "labels.json", MLP_ONNX.name):
        (restricted / name).write_bytes(files[f"models/{name}"])
    manifest = read_conversion_manifest(restricted)
    assert [a.path for a in manifest.artifacts] == [MLP_ONNX.name]
    assert manifest.recommended["path"] == MLP_ONNX.name

    # --all: today's bundle, every model and both backends' wheels; bigger by the LiteRT wheels.
    assert [m["path"] for m in everything["manifest"]["models"]] == [
        f"models/{m.name}" for m in (MLP_FP32, MLP_INT8, MLP_ONNX)]
    assert everything["manifest"]["backends"] == ["litert", "onnxruntime"]
    assert everything["chosen"] is None
    assert lean["bytes"] < everything["bytes"]


def test_artifact_picks_another_and_drops_the_recommendation_it_does_not_ship(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    info = bundle(out, tmp_path / "int8.tar.gz", "--artifact", "int8", "--no-wheels")
    assert [m["path"] for m in info["manifest"]["models"]] == [f"models/{MLP_INT8.name}"]
    assert info["manifest"]["backends"] == ["litert"] and not info["chosen"]["recommended"]
    shipped = json.loads(members(tmp_path / "int8.tar.gz")["models/manifest.json"])
    assert [a["path"] for a in shipped["artifacts"]] == [MLP_INT8.name]
    assert "recommended" not in shipped  # it named an artifact the bundle does not hold
    by_file = bundle(out, tmp_path / "fp32.tar.gz", "--artifact", MLP_FP32.name, "--no-wheels")
    assert [m["path"] for m in by_file["manifest"]["models"]] == [f"models/{MLP_FP32.name}"]


def test_a_device_without_the_recommended_backend_gets_the_first_passing_one_with_a_note(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    done = edgeml("bundle", out, "--device", "rpi-32bit", "--no-wheels", "-o", tmp_path / "b.tar.gz", check_exit=0)
    assert f"note: the recommended {MLP_ONNX.name} has no backend on rpi-32bit" in done.stderr
    assert f"using {MLP_FP32.name}" in done.stderr
    assert f"model:  models/{MLP_FP32.name}" in done.stdout and "restricted to that model" in done.stdout


def test_without_a_recommendation_the_first_passing_artifact_with_a_note(tmp_path):
    out = conversion_dir(tmp_path / "converted", recommended=None, failed={MLP_FP32.name})
    info = bundle(out, tmp_path / "b.tar.gz", "--no-wheels")
    assert [m["path"] for m in info["manifest"]["models"]] == [f"models/{MLP_INT8.name}"]
    assert any("has no measured recommendation" in note for note in info["notes"])


def test_the_text_output_says_size_and_contents(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    done = edgeml("bundle", out, "--device", "generic-x86_64", "--no-wheels", "-o", tmp_path / "b.tar.gz",
                  check_exit=0)
    first = done.stdout.splitlines()[0]
    assert first.startswith(str(tmp_path / "b.tar.gz")) and " KiB " in first
    assert f"model:  models/{MLP_ONNX.name}  (onnx fp32, 1.4 KiB; recommended: p50 0.020 ms on this machine)" \
        in done.stdout
    assert "with:   models/labels.json, models/manifest.json (restricted to that model)" in done.stdout


def test_bad_artifact_options_exit_2_with_one_line(tmp_path):
    out = conversion_dir(tmp_path / "converted", failed={MLP_INT8.name})
    target = tmp_path / "b.tar.gz"
    unknown = edgeml("bundle", out, "--device", "generic-x86_64", "--artifact", "fp16", "-o", target, check_exit=2)
    assert "no artifact matches --artifact 'fp16'" in unknown.stderr and "Traceback" not in unknown.stderr
    failed = edgeml("bundle", out, "--device", "generic-x86_64", "--artifact", "int8", "-o", target, check_exit=2)
    assert f"{MLP_INT8.name} failed its conversion check" in failed.stderr
    both = edgeml("bundle", out, "--device", "generic-x86_64", "--artifact", "int8", "--all", "-o", target,
                  check_exit=2)
    assert "not both" in both.stderr
    model_file = edgeml("bundle", MLP_ONNX, "--device", "generic-x86_64", "--artifact", "fp32", "-o", target,
                        check_exit=2)
    assert "--artifact picks one of a conversion manifest's artifacts" in model_file.stderr
    assert not target.exists()


@pytest.mark.ssh
def test_the_lean_bundle_deploys_and_serves_its_one_model(sshd, device_python, tmp_path):
    out = conversion_dir(tmp_path / "converted")
    lean = tmp_path / "lean.tar.gz"
    edgeml("bundle", out, "--device", "generic-x86_64", "--python", device_python, "--version", "lean1", "-o", lean,
           check_exit=0)
    login, remote_dir = sshd.login(), tmp_path / "device" / "edgeml"
    edgeml("deploy", lean, *login.deploy_args(), "--dir", remote_dir, check_exit=0)  # verified + smoke-tested
    status = json.loads(edgeml("deploy", "--status", *login.deploy_args(), "--dir", remote_dir, "--json",
                               check_exit=0).stdout)
    assert status[0]["version"] == "lean1" and status[0]["details"]["models"] == [f"models/{MLP_ONNX.name}"]
    python = remote_dir / "current" / "venv" / "bin" / "python"
    probe = ("from edgeml_runtime import Predictor; import importlib.util as u; "
             f"p = Predictor.from_bundle({str(remote_dir)!r}); "
             "print(p.model.path.name, p.version, p.metadata.classes[0], u.find_spec('ai_edge_litert') is None)")
    done = login.run(f"{python} -c \"{probe}\"", check=True)
    assert done.stdout.split() == [MLP_ONNX.name, "lean1", CLASSES[0], "True"]

    # `edgeml select --host` finds the release's Python when the given one has no edgeml_runtime: it measures
    # what that release can run (only ONNX Runtime is installed there; the .tflite files are skipped, saying why).
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    result = json.loads(edgeml("select", out, *login.deploy_args(), "--dir", remote_dir, "--remote-python",
                               bare / "bin" / "python", "--threads", "1", "--budget-seconds", "0.2", "--json",
                               check_exit=0).stdout)
    rows = {row["path"]: row for row in result["measurements"][0]["rows"]}
    assert rows[MLP_ONNX.name]["p50_ms"] > 0 and rows[MLP_ONNX.name]["backend"] == "onnxruntime"
    assert "skipped" in rows[MLP_FP32.name] and "skipped" in rows[MLP_INT8.name]
    recommended = json.loads((out / "manifest.json").read_text())["recommended"]
    assert recommended["path"] == MLP_ONNX.name and recommended["measured_on"]["kind"] == "device"


def test_a_recommendation_pointing_outside_the_folder_is_refused(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    (tmp_path / "secret.onnx").write_bytes(MLP_ONNX.read_bytes())
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["recommended"]["path"] = "../secret.onnx"
    (out / "manifest.json").write_text(json.dumps(manifest))
    target = tmp_path / "b.tar.gz"
    done = edgeml("bundle", out, "--device", "generic-x86_64", "--no-wheels", "-o", target, check_exit=2)
    assert "'../secret.onnx' must be relative and inside the directory" in done.stderr
    assert "Traceback" not in done.stderr and not target.exists()


def test_the_lean_bundle_is_reproducible(tmp_path):
    out = conversion_dir(tmp_path / "converted")
    first, second = tmp_path / "1.tar.gz", tmp_path / "2.tar.gz"
    for target in (first, second):
        edgeml("bundle", out, "--device", "generic-x86_64", "--no-wheels", "-o", target, check_exit=0)
    assert first.read_bytes() == second.read_bytes()  # the restricted manifest is written the same way each time
