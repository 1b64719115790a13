"""Hostile or careless `edgeml deploy` arguments (finding 7): a --remote-python that would inject shell commands,
a --host that ssh would read as an option, and a deploy directory whose path systemd would expand in the
unit the agent writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from edgeml_runtime.serve.systemd import deployment_unit, split_exec_line

from edgeml.device.ssh import Ssh, SshOptions, SshTarget
from tests.security import device_support as support
from tests.support.cli import edgeml

INJECTIONS = ("python3; touch {sentinel}", "python3 && touch {sentinel}", "$(touch {sentinel})", "`touch {sentinel}`",
              "python3\ntouch {sentinel}", "python3 | touch {sentinel}")


@pytest.mark.ssh
@pytest.mark.slow
@pytest.mark.parametrize("template", INJECTIONS)
def test_remote_python_cannot_inject_a_command(template, made, login, tmp_path):
    sentinel = tmp_path / "injected"
    value = template.format(sentinel=sentinel)
    device = tmp_path / "device" / "edgeml"
    for args in (["--status"], [made["small"]]):
        done = edgeml("deploy", *args, *login.deploy_args(), "--dir", device, "--remote-python", value)
        refused = done.returncode == 1 and not sentinel.exists()
        support.TALLY.record("--remote-python injection", refused, sentinel.exists())
        assert done.returncode == 1, done.stdout + done.stderr
        assert not sentinel.exists(), f"{value!r} ran a command on the device"
        assert "Traceback" not in done.stderr
    assert not (device / "staging").exists() or not list((device / "staging").iterdir())


@pytest.mark.ssh
@pytest.mark.slow
def test_remote_python_may_be_a_path_with_a_space(made, login, tmp_path_factory, tmp_path):
    """Quoted as one word: a real path with a space in it works (v1 is current: the deploy verifies the bundle
    and reports it unchanged, through the one-session bootstrap)."""
    folder = tmp_path / "my python" / "bin"
    folder.mkdir(parents=True)
    (folder / "python3").symlink_to(support.device_python_path(login))
    device = support.copy_device(support.deployed_v1(tmp_path_factory, login, made), tmp_path / "device" / "edgeml")
    python = ["--remote-python", str(folder / "python3")]
    status = json.loads(edgeml("deploy", "--status", *login.deploy_args(), "--dir", device, *python, "--json",
                               check_exit=0).stdout)[0]
    assert status["version"] == "v1"
    again = json.loads(edgeml("deploy", made["v1"], *login.deploy_args(), "--dir", device, *python, "--json",
                              check_exit=0).stdout)[0]
    assert again["action"] == "unchanged" and not list((device / "staging").iterdir())


@pytest.mark.parametrize("host", ["-oProxyCommand=touch {sentinel}", "-oProxyCommand=sh${{IFS}}-c${{IFS}}id@pi",
                                  "-F/tmp/evil-config", "pi@-oProxyCommand=touch{sentinel}"])
def test_a_host_starting_with_a_dash_is_refused_before_ssh_runs(host, tmp_path):
    # A mock transport (named as such): `ssh` and `scp` first on PATH that only record that they ran.
    sentinel, ran = tmp_path / "proxy-command-ran", tmp_path / "ssh-ran"
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("ssh", "scp"):
        (fake / tool).write_text(f"#!/bin/sh\necho \"$@\" >> {ran}\nexit 255\n")
        (fake / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    value = host.format(sentinel=sentinel)
    for args in (["--status"], ["--rollback"]):
        done = edgeml("deploy", *args, "--host", value, "--dir", tmp_path / "device", env=env)
        refused = done.returncode == 2 and not ran.exists() and not sentinel.exists()
        support.TALLY.record("--host read as an ssh option", refused, sentinel.exists())
        assert done.returncode == 2, done.stdout + done.stderr
        assert not ran.exists() and not sentinel.exists()
        assert "Traceback" not in done.stderr
        assert "cannot start with '-'" in done.stderr or "is not user@host[:port]" in done.stderr


def test_ssh_ends_its_options_before_the_destination():
    if shutil.which("ssh") is None:
        pytest.skip("the OpenSSH client (ssh) is not installed")
    argv = Ssh(SshTarget.parse("pi@raspberrypi.local:2222"), SshOptions()).ssh_argv("uname -m")
    assert argv[argv.index("--") + 1:] == ["pi@raspberrypi.local", "uname -m"]


def test_the_systemd_unit_escapes_percent_in_every_setting(tmp_path):
    """A deploy directory with '%' in its path: systemd expands %-specifiers in Description=,
    WorkingDirectory= and ExecStart=; '%Z' is no specifier at all, so an unescaped one makes the unit fail
    to load (the unit used to escape ExecStart= only)."""
    deployment = tmp_path / "100%Z dir"
    (deployment / "current" / "venv" / "bin").mkdir(parents=True)
    (deployment / "current" / "venv" / "bin" / "python").symlink_to(shutil.which("python3"))
    unit = deployment_unit(str(deployment), ["--http", "127.0.0.1:8080"])
    lines = unit.splitlines()
    escaped = str(deployment).replace("%", "%%")
    assert f"WorkingDirectory={escaped}" in lines
    assert f"Description=edgeml model service for {escaped}" in lines
    exec_start = next(line for line in lines if line.startswith("ExecStart="))[len("ExecStart="):]
    assert split_exec_line(exec_start)[-3:] == [str(deployment), "--http", "127.0.0.1:8080"]
    assert not [line for line in lines if "%" in line.replace("%%", "")]
    with pytest.raises(ValueError, match="control characters"):
        deployment_unit(str(tmp_path / "evil\nExecStartPre=/bin/touch /tmp/x"), ["--http", "127.0.0.1:8080"])
    analyzer = shutil.which("systemd-analyze")
    if analyzer is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd): the unit text was checked, "
                    "not loaded by systemd")
    path = tmp_path / "edgeml-serve.service"
    path.write_text(unit)
    check = subprocess.run([analyzer, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert (check.returncode, check.stderr) == (0, ""), check.stderr
