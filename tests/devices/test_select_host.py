"""`edgeml select --host`: the candidate artifacts measured on a device over a real OpenSSH server on 127.0.0.1
(the device's Python runs `python -m edgeml_runtime select`), the manifest rewritten with the device's figures,
nothing left behind on the device; several hosts (the slowest decides); a device without edgeml_runtime, a deployed
release's Python, and an unreachable host."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.cli import edgeml
from tests.support.conversions import conversion_dir
from tests.support.marks import needs_backend_for
from tests.support.models import MLP_FP32, MLP_INT8, MLP_ONNX

pytestmark = [pytest.mark.ssh, needs_backend_for(MLP_FP32, MLP_ONNX)]

QUICK = ["--threads", "1", "--budget-seconds", "0.2"]


def reach(login):
    return ["--host", login.target, "-F", str(login.config)]


@pytest.fixture
def device_tmp(sshd, tmp_path):
    """A login whose sessions use their own TMPDIR, to see what select leaves there."""
    folder = tmp_path / "device-tmp"
    folder.mkdir()
    return sshd.login(environment={"TMPDIR": str(folder)}), folder


def test_select_on_a_device_rewrites_the_manifest_with_its_figures(device_tmp, tmp_path):
    login, device_tmp_dir = device_tmp
    out = conversion_dir(tmp_path / "converted")
    result = json.loads(edgeml("select", out, *reach(login), "--remote-python", sys.executable, *QUICK, "--json",
                               check_exit=0).stdout)
    recommended = json.loads((out / "manifest.json").read_text())["recommended"]
    measured_on = recommended["measured_on"]
    assert measured_on["kind"] == "device" and measured_on["host"] == login.target
    assert not measured_on.get("emulated") and measured_on["arch"]
    (measurement,) = result["measurements"]
    assert measurement["where"] == login.target and result["written"]
    assert [row["path"] for row in measurement["rows"]] == [m.name for m in (MLP_FP32, MLP_INT8, MLP_ONNX)]
    assert all(row["p50_ms"] > 0 for row in measurement["rows"])
    assert recommended["path"] == measurement["chosen"]["path"]
    assert not list(device_tmp_dir.glob("edgeml-select-*"))  # the uploaded folder was removed


def test_several_hosts_each_get_a_table_and_the_slowest_decides(sshd, tmp_path):
    first, second = sshd.login(), sshd.login()
    out = conversion_dir(tmp_path / "converted")
    result = json.loads(edgeml("select", out, *reach(first), "--host", second.target, "-F", str(second.config),
                               "--remote-python", sys.executable, *QUICK, "--json", check_exit=0).stdout)
    measurements = result["measurements"]
    assert [m["where"] for m in measurements] == [first.target, second.target]
    slowest = max(measurements, key=lambda m: m["chosen"]["p50_ms"])
    assert result["decided_by"] == slowest["where"]
    recommended = json.loads((out / "manifest.json").read_text())["recommended"]
    assert recommended["measured_on"]["host"] == slowest["where"]
    assert recommended["path"] == slowest["chosen"]["path"]
    assert [device["host"] for device in recommended["devices"]] == [first.target, second.target]


def test_a_device_python_without_the_runtime_says_what_to_do(sshd, tmp_path):
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    out = conversion_dir(tmp_path / "converted")
    before = (out / "manifest.json").read_bytes()
    done = edgeml("select", out, *reach(sshd.login()), "--remote-python", bare / "bin" / "python",
                  "--dir", tmp_path / "nothing-deployed", *QUICK, check_exit=2)
    assert "has no edgeml_runtime" in done.stderr and "deploy one first" in done.stderr
    assert "Traceback" not in done.stderr and (out / "manifest.json").read_bytes() == before


def test_an_unreachable_host_exits_2_naming_the_fix(sshd, tmp_path):
    out = conversion_dir(tmp_path / "converted")
    before = (out / "manifest.json").read_bytes()
    login = sshd.login()
    done = edgeml("select", out, "--host", f"{login.user}@127.0.0.1:{_closed_port()}", "-F", str(login.config),
                  *QUICK, check_exit=2)
    (error,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "cannot connect" in error and "check --host" in error and "Traceback" not in done.stderr
    assert (out / "manifest.json").read_bytes() == before


def _closed_port() -> int:
    from tests.support.local_servers import free_port

    return free_port()  # nothing listens on it
