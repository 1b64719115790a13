"""Fixtures for the device tests: tiny real ONNX models and real bundles for this machine (x86_64)."""

from __future__ import annotations

import platform

import pytest

from tests.devices.device_helpers import make_onnx_model
from tests.support.cli import edgeml


@pytest.fixture(scope="session")
def device_python(sshd) -> str:
    """X.Y of the python3 an ssh login to this machine gets (the bundles' wheels must match it)."""
    if platform.machine() != "x86_64":
        pytest.skip("the deploy tests build x86_64 bundles for the local sshd")
    done = sshd.login().run("python3 -c 'import sys; print(sys.version_info[0], sys.version_info[1])'", check=True)
    return ".".join(done.stdout.split())


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, device_python):
    """Bundles for generic-x86_64: v1, v2, v3 (three different models), and one whose model is corrupt
    but listed with its true sha256 (it verifies, installs, and then fails the smoke test)."""
    root = tmp_path_factory.mktemp("bundles")
    made = {}
    for name, seed in (("v1", 1), ("v2", 2), ("v3", 3)):
        model = make_onnx_model(root / name / "classifier.onnx", seed)
        made[name] = root / f"{name}.tar.gz"
        edgeml("bundle", model, "--device", "generic-x86_64", "--python", device_python, "--version", name,
               "-o", made[name], check_exit=0)
    broken = root / "broken" / "classifier.onnx"
    broken.parent.mkdir()
    broken.write_bytes(b"\x08\x07garbage, not a protobuf" * 10)
    made["broken"] = root / "broken.tar.gz"
    edgeml("bundle", broken, "--device", "generic-x86_64", "--python", device_python, "--version", "broken",
           "-o", made["broken"], check_exit=0)
    made["models"] = {name: root / name / "classifier.onnx" for name in ("v1", "v2", "v3")}
    return made
