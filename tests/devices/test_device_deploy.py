"""`edgeml deploy` against a real OpenSSH server on 127.0.0.1, with real bundles (real numpy and
onnxruntime wheels installed offline into a venv on the "device"): deploy v1, deploy v2, bench, status,
roll back, then every failure path, each of which must leave the previous release active and working.

Every test has a device directory of its own, in a known state: empty, or with v1 (then v2) deployed.
Those states are made once per module by real deploys and each test works on a copy, so the tests do not
depend on each other or on their order (`-k` picks any of them)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.support.cli import command, edgeml

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


def reach(login, remote_dir):
    """A device: (login, deploy dir on the 'device', `edgeml deploy` options reaching it)."""
    return login, remote_dir, [*login.deploy_args(), "--dir", str(remote_dir)]


@pytest.fixture(scope="module")
def deployed_states(sshd, bundles, tmp_path_factory):
    """Deploy directories made once by real deploys: "v1" (v1 deployed) and "v2" (v1, then v2: current v2,
    previous v1). Tests never change these, only their own copies (`device_at`)."""
    login, root, states = sshd.login(), tmp_path_factory.mktemp("deployed"), {}
    for version, before in (("v1", None), ("v2", "v1")):
        state = root / version / "edgeml"
        if before:
            shutil.copytree(states[before], state, symlinks=True)
        edgeml("deploy", bundles[version], *reach(login, state)[2], check_exit=0)
        states[version] = state
    return states


@pytest.fixture
def empty_device(sshd, tmp_path):
    """A device nothing was deployed to."""
    return reach(sshd.login(), tmp_path / "device" / "edgeml")


@pytest.fixture
def device_at(sshd, deployed_states, tmp_path):
    """device_at("v1"): a device of this test's own, a copy of that deployed state (the copy's releases
    and links are what the deploys left: relative links, venvs that run where they are)."""

    def copy(version: str):
        remote_dir = tmp_path / "device" / "edgeml"
        shutil.copytree(deployed_states[version], remote_dir, symlinks=True)
        return reach(sshd.login(), remote_dir)

    return copy


@pytest.fixture
def device(device_at):
    """A device of this test's own where v1, then v2 were deployed: current v2, previous v1."""
    return device_at("v2")


def deploy(device, *args, check_exit=None, env=None):
    return edgeml("deploy", *args, *device[2], check_exit=check_exit, env=env)


def current_version(device) -> str:
    status = json.loads(deploy(device, "--status", "--json", check_exit=0).stdout)[0]
    return status["version"]


def run_on_device(device, version: str, code: str) -> subprocess.CompletedProcess:
    """Run Python code with a release's venv python, over ssh (cwd: the release)."""
    login, remote_dir, _ = device
    release = remote_dir / "releases" / version
    return login.run(f"cd {shlex.quote(str(release))} && venv/bin/python -c {shlex.quote(code)}")


def assert_current_works(device, version: str, bundles) -> None:
    """`current` points at `version`, and its model gives the same output on the device as here."""
    login, remote_dir, _ = device
    assert os.readlink(remote_dir / "current") == f"releases/{version}"
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    code = ("import json, numpy as np, edgeml_runtime as er; "
            f"m = er.load('models/classifier.onnx'); x = np.array({x.tolist()}, dtype=np.float32); "
            "print(json.dumps(m.run(x)['probs'].tolist()))")
    done = login.run(f"cd {shlex.quote(str(remote_dir / 'current'))} && venv/bin/python -c {shlex.quote(code)}")
    assert done.returncode == 0, done.stderr
    import edgeml_runtime as er

    expected = er.load(bundles["models"][version]).run(x)["probs"]
    # Same onnxruntime version and CPU on both sides; 1e-6 allows for a different thread split.
    np.testing.assert_allclose(np.array(json.loads(done.stdout)), expected, atol=1e-6)


def test_deploy_first_release_runs_without_tensorflow(empty_device, bundles):
    done = deploy(empty_device, bundles["v1"], "--json", check_exit=0)
    result = json.loads(done.stdout)[0]
    assert result["ok"] and result["action"] == "activated" and result["version"] == "v1"
    assert result["previous"] is None
    assert_current_works(empty_device, "v1", bundles)
    probe = run_on_device(empty_device, "v1", "import tensorflow")
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
    packages = run_on_device(empty_device, "v1", "import importlib.metadata as m; "
                                                 "print(sorted(d.metadata['Name'].lower() for d in m.distributions()))")
    assert "onnxruntime" in packages.stdout and "tensorflow" not in packages.stdout
    _, remote_dir, _ = empty_device  # the "device" is this machine, so its files can be read directly
    unit = (remote_dir / "current" / "edgeml-serve.service").read_text()
    # The unit starts the active release's venv through `current`, so it keeps working across deploys.
    assert f"ExecStart={remote_dir}/current/venv/bin/python -m edgeml_runtime serve {remote_dir}" in unit
    assert "Restart=on-failure" in unit


def test_deploy_second_release_keeps_the_first(device_at, bundles):
    device = device_at("v1")
    done = deploy(device, bundles["v2"], check_exit=0)
    assert "activated" in done.stdout and "upload" in done.stderr and "smoke" in done.stderr
    assert_current_works(device, "v2", bundles)
    assert os.readlink(device[1] / "previous") == "releases/v1"


def test_bench_on_device_returns_bench_json(device):
    done = deploy(device, "--bench", "--runs", "20", "--json", check_exit=0)
    result = json.loads(done.stdout)[0]
    (row,) = result["bench"]
    assert row["schema"] == "edgeml.bench/1" and row["backend"] == "onnxruntime"
    assert row["model"].endswith("releases/v2/models/classifier.onnx")
    assert row["runs"] >= 20 and 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
    table = deploy(device, "--bench", "--runs", "20", check_exit=0).stdout
    assert "classifier.onnx" in table and "onnxruntime" in table


def test_status_reports_current_previous_and_releases(device):
    status = json.loads(deploy(device, "--status", "--json", check_exit=0).stdout)[0]
    assert (status["version"], status["previous"]) == ("v2", "v1")
    details = status["details"]
    assert details["current_ok"] and details["models"] == ["models/classifier.onnx"]
    assert {r["version"] for r in details["releases"] if r["complete"]} == {"v1", "v2"}


def test_rollback_and_forward_again_without_reinstalling(device, bundles):
    done = deploy(device, "--rollback", "--json", check_exit=0)
    assert json.loads(done.stdout)[0]["version"] == "v1"
    assert_current_works(device, "v1", bundles)
    again = deploy(device, bundles["v2"], check_exit=0)
    assert ": install:" not in again.stderr  # v2 is still installed: verified, smoke-tested, switched
    assert_current_works(device, "v2", bundles)
    unchanged = json.loads(deploy(device, bundles["v2"], "--json", check_exit=0).stdout)[0]
    assert unchanged["action"] == "unchanged"


def test_rollback_refuses_a_previous_release_changed_on_the_device(device, bundles):
    """The previous release was verified when it came, but files on the device may change after: rollback
    checks them against the manifest again before switching, and so does a redeploy that reuses a release."""
    model = device[1] / "releases" / "v1" / "models" / "classifier.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    done = deploy(device, "--rollback", check_exit=1)
    assert "failed at verify" in done.stdout
    assert "releases/v1/models/classifier.onnx changed (sha256 mismatch) on the device" in done.stderr
    assert_current_works(device, "v2", bundles)
    assert os.readlink(device[1] / "previous") == "releases/v1"
    install = device[1] / "releases" / "v2" / "install.sh"
    install.unlink()
    install.symlink_to("/bin/true")
    again = deploy(device, bundles["v2"], check_exit=1)
    assert "releases/v2/install.sh is missing or was replaced by a link on the device" in again.stderr
    assert os.readlink(device[1] / "current") == "releases/v2"


def test_failed_smoke_test_keeps_previous_release(device, bundles):
    done = deploy(device, bundles["broken"], check_exit=1)
    assert "failed at smoke" in done.stdout and "smoke inference failed" in done.stderr
    assert not (device[1] / "releases" / "broken").exists()
    assert_current_works(device, "v2", bundles)


def test_tampered_bundle_is_refused_before_anything_changes(device, bundles, tmp_path):
    tampered = tmp_path / "tampered.tar.gz"
    _rewrite_bundle(bundles["v1"], tampered, version="tampered")
    done = deploy(device, tampered, check_exit=1)
    assert "failed at verify" in done.stdout and "sha256 mismatch for models/classifier.onnx" in done.stderr
    assert not (device[1] / "releases" / "tampered").exists()
    assert_current_works(device, "v2", bundles)


def test_corruption_in_transit_is_detected(device, bundles, tmp_path):
    # A mock transport (named as such): an `ssh` first on PATH that runs the real ssh and, for the session
    # that streams the agent and then the bundle (--receive), flips one byte of the bundle on the way, as a
    # faulty link would. Only the local side is faked.
    from edgeml.device.deploy import AGENT_SOURCE

    flip = len(AGENT_SOURCE.encode()) + 1000
    real_ssh = shutil.which("ssh")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ssh").write_text(
        f"#!{sys.executable}\n"
        "import os, subprocess, sys, threading\n"
        f"real = {real_ssh!r}\n"
        "if not any('--receive' in arg for arg in sys.argv[1:]):\n"
        "    os.execv(real, [real, *sys.argv[1:]])\n"
        "child = subprocess.Popen([real, *sys.argv[1:]], stdin=subprocess.PIPE)\n"
        "def pump():\n"
        "    offset = 0\n"
        "    try:\n"
        "        while block := os.read(0, 1 << 16):\n"
        f"            if offset <= {flip} < offset + len(block):\n"
        f"                i = {flip} - offset\n"
        "                block = block[:i] + bytes([block[i] ^ 0xFF]) + block[i + 1:]\n"
        "            offset += len(block)\n"
        "            child.stdin.write(block)\n"
        "            child.stdin.flush()\n"
        "        child.stdin.close()\n"
        "    except OSError:\n"
        "        pass\n"
        "threading.Thread(target=pump, daemon=True).start()\n"
        "os._exit(child.wait())  # as ssh does: gone when the remote command is\n")
    (fake / "ssh").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    done = deploy(device, bundles["v1"], env=env, check_exit=1)
    assert "corrupted in transit" in done.stderr
    assert_current_works(device, "v2", bundles)
    assert not list((device[1] / "staging").iterdir())


def test_killed_deploy_keeps_previous_release(device, bundles):
    process = subprocess.Popen(command("edgeml", "deploy", bundles["v3"], *device[2]), stderr=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, text=True)
    for line in process.stderr:  # wait until the device is installing the upload, then kill
        if ": install:" in line or ": smoke:" in line:
            break
    else:
        pytest.fail("the deploy finished before it could be killed")
    process.send_signal(signal.SIGKILL)
    process.wait()
    # The orphaned ssh sees stdin close; the agent finishes installing, gets no "commit" and backs out.
    release = device[1] / "releases" / "v3"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and list((device[1] / "staging").iterdir()):
        time.sleep(0.5)
    assert not list((device[1] / "staging").iterdir())
    assert_current_works(device, "v2", bundles)
    assert not release.exists()  # installed, smoke-tested, never committed: removed again
    assert current_version(device) == "v2"


def test_several_hosts_one_unreachable(device, bundles):
    dead = "nobody@127.0.0.1:1"  # nothing listens on port 1
    done = deploy(device, "--status", "--host", dead, "--json", check_exit=1)
    results = {r["host"]: r for r in json.loads(done.stdout)}
    assert results[device[0].target]["ok"] and results[device[0].target]["version"] == "v2"
    assert not results[dead]["ok"] and results[dead]["stage"] == "status"
    assert "Connection refused" in results[dead]["error"]
    assert "1 of 2 host(s) failed" in done.stderr


def test_bad_invocations_exit_2_with_one_line(empty_device, tmp_path):
    missing = deploy(empty_device, tmp_path / "nope.tar.gz", check_exit=2)
    assert "bundle not found" in missing.stderr and "Traceback" not in missing.stderr
    both = deploy(empty_device, tmp_path / "nope.tar.gz", "--rollback", check_exit=2)
    assert "give only one of" in both.stderr
    not_bundle = tmp_path / "x.tar.gz"
    not_bundle.write_bytes(b"not a tarball")
    assert "not a readable edgeml bundle" in deploy(empty_device, not_bundle, check_exit=2).stderr


def _rewrite_bundle(source, target, version):
    """Copy a bundle with another version and one model byte flipped, keeping the manifest's sha256."""
    import gzip
    import io
    import tarfile

    with tarfile.open(source, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    top = members[0][0].name.split("/")[0]
    with gzip.open(target, "wb") as zipped, tarfile.open(fileobj=zipped, mode="w", format=tarfile.USTAR_FORMAT) as out:
        for member, data in members:
            if member.name.endswith("edgeml-bundle.json"):
                manifest = json.loads(data)
                manifest["version"] = version
                data = json.dumps(manifest).encode()
            if member.name.endswith(".onnx"):
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            member.name = member.name.replace(top, f"classifier-{version}", 1)
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
