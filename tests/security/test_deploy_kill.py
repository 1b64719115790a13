"""kill -9 at each stage of a deploy: the previous release stays `current`, keeps serving and keeps passing its
smoke test, and the next deploy cleans up what the killed one left (staging/ folders, half-made releases,
an install still running in them) and succeeds.

The agent runs as `edgeml deploy` runs it (the bundle streamed on stdin with --receive) but as a local
process, so the test holds its pid and can SIGKILL it at a known stage: the "device" is this machine.
A `python -m edgeml_runtime serve DIR` started from the active release's venv (as the systemd unit does)
answers /predict throughout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from tests.security import device_support as support
from tests.support.cli import command, edgeml
from tests.support.local_servers import free_port, wait_for_port

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

STAGES = ("upload", "verify", "install", "smoke", "activate")


@pytest.fixture
def serving(made, login, tmp_path_factory, tmp_path):
    """(device with v1 active, a function returning the served answer to one sample)."""
    device = support.copy_device(support.deployed_v1(tmp_path_factory, login, made), tmp_path / "device" / "edgeml")
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([str(device / "current" / "venv" / "bin" / "python"), "-m", "edgeml_runtime",
                                    "serve", str(device), "--http", f"127.0.0.1:{port}"], stdout=log, stderr=log,
                                   cwd=tmp_path)

    def answer():
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict",
                                         data=json.dumps([0.5, -1, 2, 0.25]).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = json.load(response)
        return payload["version"], payload["prediction"]

    try:
        wait_for_port(port, timeout=60)
        yield device, answer
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start_agent(python, device, bundle):
    staging = device / "staging" / f"kill-{os.urandom(4).hex()}"
    staging.mkdir(parents=True)
    data = bundle.read_bytes()
    argv = [python, str(support.AGENT), "deploy", "--dir", str(device), "--bundle", str(staging / "bundle.tar.gz"),
            "--sha256", support.sha256(bundle), "--receive", str(len(data))]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return process, data, staging


def _kill_at(stage, process, data, staging):
    """Feed the agent and SIGKILL it at `stage`; returns the staging folders it saw besides its own when it
    started verifying (what the previous killed run left and this one did not clean), or None."""
    if stage == "upload":
        process.stdin.write(data[: len(data) // 2])  # the pipe holds 64 KiB: the agent has read the rest
        process.stdin.flush()
        while not (staging / "bundle.tar.gz").exists() or (staging / "bundle.tar.gz").stat().st_size == 0:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        return None
    process.stdin.write(data)
    process.stdin.flush()
    others = None
    wanted = "ready" if stage == "activate" else stage
    for line in process.stdout:
        event = json.loads(line)
        if event.get("event") == "stage" and event.get("stage") == "verify":
            others = sorted(p.name for p in staging.parent.iterdir() if p != staging)
        if event.get("event") == "error":
            raise AssertionError(f"the agent failed before {stage}: {event}")
        if event.get("event") == wanted or (event.get("event") == "stage" and event.get("stage") == wanted):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return others
    raise AssertionError(f"the agent ended before {stage}")


def test_kill_9_at_each_deploy_stage_keeps_the_previous_release_serving(made, login, serving):
    device, answer = serving
    python = support.device_python_path(login)
    first = answer()
    assert first[0] == "v1"
    v1_files = support.snapshot(device / "releases" / "v1")
    left_behind = {}
    for stage in STAGES:
        process, data, staging = _start_agent(python, device, made["v2"])
        others = _kill_at(stage, process, data, staging)
        if others is not None and left_behind:
            assert others == [], f"staging still holds {others} when the deploy after the kill at {left_behind} ran"
        left_behind = stage
        smoke = support.current_runs(login, device)
        lost = (os.readlink(device / "current") != "releases/v1" or answer() != first or smoke.returncode != 0
                or support.snapshot(device / "releases" / "v1") != v1_files)
        support.TALLY.record("kill -9 of the agent at a deploy stage", True, lost)
        assert not lost, (stage, smoke.stderr)

    # The next deploy (the real controller) cleans up after the last kill and activates v2.
    done = edgeml("deploy", made["v2"], *login.deploy_args(), "--dir", device, "--json", check_exit=0)
    result = json.loads(done.stdout)[0]
    assert result["action"] == "activated" and result["version"] == "v2" and result["previous"] == "v1"
    assert not list((device / "staging").iterdir())
    assert not list(device.glob("releases/*/.edgeml-running"))  # no install of a killed deploy still running
    assert sorted(p.name for p in (device / "releases").iterdir()) == ["v1", "v2"]
    assert support.current_runs(login, device).returncode == 0


def test_a_controller_killed_mid_upload_leaves_nothing_in_staging(made, login, serving):
    """kill -9 of `edgeml deploy` while it streams the bundle: ssh goes with it, the agent sees its stdin end
    early and removes its staging folder itself."""
    device, answer = serving
    first = answer()
    process = subprocess.Popen(command("edgeml", "deploy", made["v2"], *login.deploy_args(), "--dir", device),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if ": upload:" in line:
            break
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and list((device / "staging").iterdir()):
        time.sleep(0.2)
    left = list((device / "staging").iterdir())
    lost = os.readlink(device / "current") != "releases/v1" or answer() != first
    support.TALLY.record("kill -9 of edgeml deploy during the upload", not left, lost)
    assert not left and not lost
    assert not (device / "releases" / "v2").exists()
