"""`python -m edgeml_runtime serve` as a process: hot reload over HTTP, clean shutdown, usage errors
as one line with exit code 2, and the generated systemd unit (checked by systemd-analyze, then run)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from functools import partial

import pytest
from edgeml_runtime.serve.systemd import exec_line, render_unit, service_python, split_exec_line, unit_name

from tests.serving.serving_support import make_release, switch
from tests.support.cli import runtime_cli
from tests.support.local_servers import ServeProcess, free_port, wait_for_port
from tests.support.marks import needs_backend_for, unavailable
from tests.support.models import MLP_FP32, MLP_INT8


def get_json(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
        return json.load(response)


def wait_for_health(url, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        state = get_json(url + "/health")
        if condition(state):
            return state
        assert time.monotonic() < deadline, f"health never matched: {state}"
        time.sleep(0.05)


def test_serving_a_deployment_follows_releases_and_stops_cleanly(deployment, tmp_path):
    serve = ServeProcess([deployment, "--http", "127.0.0.1:0", "--poll-seconds", "0.05"], tmp_path)
    try:
        url = serve.http_url()
        assert get_json(url + "/predict", [0.5] * 8)["version"] == "v1"
        make_release(deployment, "v2", MLP_INT8)
        switch(deployment, "v2")
        state = wait_for_health(url, lambda s: s["version"] == "v2")
        assert state["model"]["reload"]["reloads"] == 1
        assert get_json(url + "/predict", [0.5] * 8)["version"] == "v2"
        make_release(deployment, "v3", damage=True)
        switch(deployment, "v3")
        state = wait_for_health(url, lambda s: s["model"]["reload"]["refused"] == 1)
        assert state["version"] == "v2" and "release v3 refused" in state["model"]["reload"]["last_error"]
        assert get_json(url + "/predict", [0.5] * 8)["version"] == "v2"
        assert "reload: refused release=v3" in serve.stderr
    finally:
        code = serve.stop()
    assert code == 0 and "edgeml_runtime serve: stopped" in serve.stderr


run_serve = partial(runtime_cli, "serve", timeout=60)  # `python -m edgeml_runtime serve ARGS...`, run to its end


@pytest.mark.parametrize(
    "args, message",
    [
        ([MLP_FP32], "nothing to serve on: pass --http HOST:PORT and/or --mqtt HOST:PORT"),
        ([MLP_FP32, "--http", "127.0.0.1:99999"], "--http '127.0.0.1:99999': the port must be a number 0-65535"),
        ([MLP_FP32, "--mqtt", "localhost"], "--mqtt needs --topic-in and --topic-out"),
        (["no/such/model.tflite", "--http", ":0"], "not found: no/such/model.tflite"),
        ([MLP_FP32, "--http", ":0", "--top-k", "0"], "--top-k must be at least 1"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args, message):
    result = run_serve(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {message}"), result.stderr


@needs_backend_for(MLP_FP32)
def test_a_broken_model_or_a_busy_port_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.tflite"
    data = bytearray(MLP_FP32.read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    broken.write_bytes(bytes(data))
    result = run_serve(broken, "--http", "127.0.0.1:0")
    assert result.returncode == 2 and "error: LiteRT cannot load the model" in result.stderr
    assert "Traceback" not in result.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_serve(MLP_FP32, "--http", f"127.0.0.1:{busy.getsockname()[1]}")
    assert result.returncode == 2 and "cannot listen on 127.0.0.1:" in result.stderr
    assert "pick another --http address" in result.stderr and "Traceback" not in result.stderr


def verify_unit(path) -> None:
    """`systemd-analyze verify` on a unit file, called last in a test: where systemd-analyze is not installed
    the test's other checks have run and it is then skipped with that reason (never a silent pass); under CI
    that is a failure (.ci/run installs systemd)."""
    analyzer = shutil.which("systemd-analyze")
    if analyzer is None:
        unavailable("systemd-analyze is not installed (apt-get install systemd): the unit was not verified")
    check = subprocess.run([analyzer, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert (check.returncode, check.stderr) == (0, ""), check.stderr


def test_the_printed_systemd_unit_verifies_and_its_command_serves(deployment, tmp_path):
    port = free_port()
    result = run_serve(deployment, "--http", f"127.0.0.1:{port}", "--top-k", "2", "--print-systemd-unit",
                       "--unit-user", "pi")
    assert result.returncode == 0, result.stderr
    unit = result.stdout
    lines = unit.splitlines()
    exec_start = next(line for line in lines if line.startswith("ExecStart="))[len("ExecStart="):]
    command = split_exec_line(exec_start)
    assert command == [sys.executable, "-m", "edgeml_runtime", "serve", str(deployment.absolute()),
                       "--http", f"127.0.0.1:{port}", "--top-k", "2"]
    for setting in ("Restart=on-failure", "User=pi", "WantedBy=multi-user.target", "StartLimitIntervalSec=0"):
        assert setting in lines
    # What systemd would start: run the ExecStart command itself and ask it for its health.
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        wait_for_port(port, timeout=30)
        state = get_json(f"http://127.0.0.1:{port}/health")
        assert state["version"] == "v1" and state["status"] == "ok"
        assert len(get_json(f"http://127.0.0.1:{port}/predict", [0.1] * 8)["prediction"]["top_k"]) == 2
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0
    path = tmp_path / unit_name("sensor model")
    path.write_text(unit.replace("User=pi", "User=root"))  # verify checks that the user exists
    verify_unit(path)


def test_exec_line_quotes_paths_systemd_would_split_or_expand():
    command = ["/opt/my app/bin/python", "-m", "edgeml_runtime", "serve", "/data/100%/m$x.tflite"]
    line = exec_line(command)
    assert line == '"/opt/my app/bin/python" -m edgeml_runtime serve "/data/100%%/m$$x.tflite"'
    assert split_exec_line(line) == command
    unit = render_unit(python="/usr/bin/python3", serve_args=["/srv/app", "--http", "0.0.0.0:80"],
                       environment={"OMP_NUM_THREADS": "2"})
    assert "Environment=OMP_NUM_THREADS=2" in unit.splitlines() and "User=" not in unit
    assert unit_name("sensor model/v1") == "edgeml-sensor-model-v1.service"


def test_a_deployment_unit_runs_the_active_release_venv(deployment, tmp_path):
    """Deployed releases carry their own venv: the unit starts `current/venv/bin/python` through the link,
    so the restart after a deploy uses the new release's runtime too."""
    venv_bin = deployment / "releases" / "v1" / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    result = run_serve(deployment, "--http", "0.0.0.0:8080", "--print-systemd-unit")
    assert result.returncode == 0, result.stderr
    exec_start = next(line for line in result.stdout.splitlines() if line.startswith("ExecStart="))
    assert split_exec_line(exec_start[len("ExecStart="):]) == [
        f"{deployment.absolute()}/current/venv/bin/python", "-m", "edgeml_runtime", "serve",
        str(deployment.absolute()), "--http", "0.0.0.0:8080"]
    path = tmp_path / "edgeml-sensor.service"
    path.write_text(result.stdout)
    verify_unit(path)


def test_a_unit_written_from_a_release_venv_points_through_current(tmp_path):
    """On a first deploy the agent runs releases/<v>/venv/bin/python before `current` exists; the unit must
    not name that release's venv, which a later deploy prunes."""
    root = tmp_path / "app"
    (root / "releases" / "v1" / "venv" / "bin").mkdir(parents=True)
    in_release = str(root / "releases" / "v1" / "venv" / "bin" / "python")
    assert service_python(str(root), in_release) == str(root / "current" / "venv" / "bin" / "python")
    assert service_python(str(root), "/usr/bin/python3") == "/usr/bin/python3"
    assert service_python(str(tmp_path / "model.tflite"), "/usr/bin/python3") == "/usr/bin/python3"
