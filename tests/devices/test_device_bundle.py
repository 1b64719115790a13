"""`edgeml bundle`: contents, manifest, reproducibility, and bad input."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile

import pytest

from tests.devices.device_helpers import make_onnx_model
from tests.support.cli import edgeml

pytestmark = pytest.mark.slow  # downloads wheels on the first run (cached in ~/.cache/edgeml/wheels)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_onnx_model(tmp_path_factory.mktemp("model") / "classifier.onnx", seed=7)


def read(bundle):
    with tarfile.open(bundle, "r:gz") as tar:
        return {m.name: (m, tar.extractfile(m).read()) for m in tar.getmembers()}


def test_bundle_lists_every_file_with_size_and_sha256(model, tmp_path):
    out = tmp_path / "b.tar.gz"
    info = json.loads(edgeml("bundle", model, "--device", "generic-x86_64", "-o", out, "--json", check_exit=0).stdout)
    manifest = info["manifest"]
    model_sha = hashlib.sha256(model.read_bytes()).hexdigest()
    top = f"classifier-{manifest['version']}"
    assert manifest["name"] == "classifier" and manifest["version"] == hashlib.sha256(
        f"models/classifier.onnx {model_sha}\n".encode()).hexdigest()[:12]
    assert manifest["device"]["name"] == "generic-x86_64" and manifest["backends"] == ["onnxruntime"]
    members = read(out)
    assert next(iter(members)) == f"{top}/edgeml-bundle.json"  # first, so the device reads it first
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(members) == {f"{top}/{p}" for p in listed} | {f"{top}/edgeml-bundle.json"}
    for path, entry in listed.items():
        member, data = members[f"{top}/{path}"]
        assert member.isreg() and (member.uid, member.gid) == (0, 0)
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]
    wheels = [p for p in listed if p.startswith("wheels/")]
    names = " ".join(wheels)
    assert "edgeml_runtime-" in names and "pip-" in names
    assert any(w.startswith("wheels/numpy-") and "x86_64" in w for w in wheels)
    assert any(w.startswith("wheels/onnxruntime-") and "cp311" in w for w in wheels)
    assert "tensorflow" not in names and "ai_edge_litert" not in names
    assert listed["models/classifier.onnx"]["sha256"] == model_sha


def test_same_inputs_same_bytes(model, tmp_path):
    first, second = tmp_path / "1.tar.gz", tmp_path / "2.tar.gz"
    edgeml("bundle", model, "--device", "generic-x86_64", "-o", first, check_exit=0)
    edgeml("bundle", model, "--device", "generic-x86_64", "-o", second, check_exit=0)
    assert first.read_bytes() == second.read_bytes()
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    pinned = tmp_path / "3.tar.gz"
    edgeml("bundle", model, "--device", "generic-x86_64", "-o", pinned, "--no-wheels", env=env, check_exit=0)
    members = read(pinned)
    assert {m.mtime for m, _ in members.values()} == {1700000000}
    manifest = json.loads(next(iter(members.values()))[1])
    assert manifest["created"] == "2023-11-14T22:13:20Z" and not manifest["offline"]
    assert [f["path"] for f in manifest["files"] if f["path"].startswith("wheels/")] == [
        "wheels/edgeml_runtime-0.1.0-py3-none-any.whl"]


def test_aarch64_bundle_gets_aarch64_wheels_for_the_profile_python(model, tmp_path):
    for device, python in (("rpi5", "cp311"), ("jetson-orin-nano", "cp310")):
        out = tmp_path / f"{device}.tar.gz"
        manifest = json.loads(edgeml("bundle", model, "--device", device, "-o", out, "--json", check_exit=0).stdout)
        wheels = [f["path"] for f in manifest["manifest"]["files"] if f["path"].startswith("wheels/")]
        binary = [w for w in wheels if not w.endswith("-none-any.whl") and "abi3" not in w]
        assert binary and all("aarch64" in w and python in w for w in binary), wheels


def test_bad_input_exits_2_with_a_clear_line(model, tmp_path):
    missing = edgeml("bundle", tmp_path / "none.onnx", "--device", "rpi5", check_exit=2)
    assert "model not found" in missing.stderr and "Traceback" not in missing.stderr
    onnx_on_32bit = edgeml("bundle", model, "--device", "rpi-32bit", "--no-wheels", check_exit=2)
    assert "rpi-32bit has no backend for .onnx models" in onnx_on_32bit.stderr
    bad_version = edgeml("bundle", model, "--device", "rpi5", "--version", "../x", check_exit=2)
    assert "bundle version '../x'" in bad_version.stderr
    unknown = edgeml("bundle", model, "--device", "rpi9", check_exit=2)
    assert "unknown device 'rpi9'" in unknown.stderr


def test_conversion_manifest_brings_its_artifacts(model, tmp_path):
    out_dir = tmp_path / "converted"
    out_dir.mkdir()
    (out_dir / "model.onnx").write_bytes(model.read_bytes())
    artifact = {"path": "model.onnx", "format": "onnx", "quantization": "fp32", "bytes": model.stat().st_size,
                "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    (out_dir / "labels.json").write_text(json.dumps({"task": "classification", "classes": ["a", "b"]}))
    (out_dir / "manifest.json").write_text(json.dumps({"schema": "edgeml.manifest/1", "artifacts": [artifact],
                                                       "metadata": {"labels": "labels.json"}}))
    out = tmp_path / "m.tar.gz"
    info = json.loads(edgeml("bundle", out_dir, "--device", "generic-x86_64", "--no-wheels", "-o", out, "--json",
                             check_exit=0).stdout)
    assert info["manifest"]["name"] == "converted"
    assert [m["path"] for m in info["manifest"]["models"]] == ["models/model.onnx"]
    files = {f["path"] for f in info["manifest"]["files"]}
    assert {"models/manifest.json", "models/labels.json"} <= files  # the Predictor on the device reads labels
    (out_dir / "labels.json").unlink()
    no_labels = edgeml("bundle", out_dir, "--device", "generic-x86_64", "--no-wheels", "-o", out, check_exit=2)
    assert "metadata file labels.json is missing" in no_labels.stderr
    (out_dir / "labels.json").write_text("{}")
    (out_dir / "model.onnx").write_bytes(b"changed" + model.read_bytes())
    changed = edgeml("bundle", out_dir, "--device", "generic-x86_64", "--no-wheels", "-o", out, check_exit=2)
    assert "sha256 differs" in changed.stderr
