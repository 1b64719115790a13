"""Deploy to "ARM" through real SSH: a bundle built for the rpi4 profile (aarch64 wheels) goes over a
real OpenSSH login whose `python3` is the emulated Pi's Python, installs offline into a venv there,
and benchmarks: the bench JSON says aarch64 and emulated."""

from __future__ import annotations

import json

import pytest

from tests.support.cli import edgeml

pytestmark = [pytest.mark.emulated, pytest.mark.ssh, pytest.mark.slow]


@pytest.fixture(scope="module")
def pi_login(sshd, emulated_pi):
    """An SSH login whose python3 (found first on PATH) is the emulated Pi's bare Python 3.11."""
    login = sshd.login(path_prefix=[emulated_pi.bin_dir])
    done = login.run("python3 -c 'import platform, sys; print(platform.machine(), sys.version_info[:2])'",
                     timeout=300)
    assert (done.returncode, done.stdout.strip()) == (0, "aarch64 (3, 11)"), done.stderr
    return login


@pytest.fixture(scope="module")
def rpi4_bundle(models, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("rpi4-bundle") / "tiny-rpi4.tar.gz"
    done = edgeml("bundle", models["tflite_int8"], "--device", "rpi4", "--version", "v1", "-o", bundle, "--json",
                  timeout=900)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)["manifest"]
    assert manifest["device"]["arch"] == "aarch64"
    wheels = [entry["path"] for entry in manifest["files"] if entry["path"].endswith(".whl")]
    assert any("aarch64" in name and "ai_edge_litert" in name for name in wheels), wheels
    assert not any("x86_64" in name for name in wheels), wheels
    return bundle


def test_deploy_bundle_to_emulated_pi_and_bench(pi_login, rpi4_bundle, tmp_path):
    deploy_dir = tmp_path / "device"
    done = edgeml("deploy", rpi4_bundle, *pi_login.deploy_args(), "--dir", deploy_dir, "--bench", "--runs", "5",
                  "--threads", "1", "--json", timeout=900)
    assert done.returncode == 0, f"stdout: {done.stdout}\nstderr: {done.stderr}"
    (result,) = json.loads(done.stdout)
    assert result["ok"] and result["version"] == "v1", result
    (row,) = result["bench"]
    assert row["schema"] == "edgeml.bench/1"
    assert row["backend"] == "litert" and row["quantization"] == "int8"
    assert row["machine"]["arch"] == "aarch64"
    assert row["machine"]["emulated"].startswith("qemu-user ")
    assert row["runs"] >= 5 and 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]

    # The release's venv holds the bundle's aarch64 wheels, installed offline by the emulated pip.
    venv_python = deploy_dir / "current" / "venv" / "bin" / "python"
    probe = pi_login.run(f"{venv_python} -c 'import platform, numpy, ai_edge_litert; print(platform.machine())'",
                         timeout=300)
    assert (probe.returncode, probe.stdout.strip()) == (0, "aarch64"), probe.stderr
