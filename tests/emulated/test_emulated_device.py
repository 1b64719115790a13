"""The emulated Pi itself: an aarch64 Python 3.11 whose subprocesses stay emulated, marked as emulated,
and a build that is idempotent when the cache is warm."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from edgeml.emulation import build, status
from tests.support.cli import edgeml

pytestmark = pytest.mark.emulated

FACTS = (
    "import json, os, platform, sys, numpy, edgeml_runtime\n"
    "from edgeml_runtime.machine import machine_info\n"
    "print(json.dumps({'machine': platform.machine(), 'python': list(sys.version_info[:2]),\n"
    "                  'emulated': os.environ.get('EDGEML_EMULATED'), 'facts': machine_info(),\n"
    "                  'numpy': numpy.__version__, 'runtime': edgeml_runtime.__file__}))\n"
)


def test_python_is_aarch64_and_marked(emulated_pi):
    done = emulated_pi.run(["python3", "-c", FACTS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["machine"] == "aarch64"
    assert facts["python"] == [3, 11]  # Raspberry Pi OS bookworm's Python
    assert facts["emulated"] == emulated_pi.emulated
    assert facts["facts"]["arch"] == "aarch64"
    assert facts["facts"]["emulated"] == emulated_pi.emulated
    assert facts["facts"]["cpu"] == "Cortex-A72"  # QEMU_CPU=cortex-a72, named from /proc/cpuinfo's CPU part
    assert facts["runtime"].startswith(str(emulated_pi.layout.runtime))  # this checkout's runtime


def test_subprocesses_stay_emulated(emulated_pi):
    """sys.executable is the launcher, so `sys.executable -m ...` (pip, venv) runs aarch64 too."""
    code = ("import subprocess, sys; print(subprocess.run([sys.executable, '-c', "
            "'import platform; print(platform.machine())'], capture_output=True, text=True).stdout.strip())")
    done = emulated_pi.run(["python3", "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "aarch64"


def test_device_programs_run(emulated_pi):
    done = emulated_pi.run(["uname", "-m"], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "aarch64")


def test_bare_launcher_has_no_preinstalled_packages(emulated_pi):
    """The launcher alone is a fresh Pi's Python (what deploy targets): numpy comes only from a bundle."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([str(emulated_pi.python), "-c", "import numpy"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 1 and "No module named 'numpy'" in done.stderr


def test_warm_build_changes_nothing(emulated_pi):
    layout = emulated_pi.layout
    parts = [layout.qemu, layout.rootfs / ".edgeml-rootfs.json", layout.site / ".edgeml-wheels.json",
             layout.launcher]
    before = [path.stat().st_mtime_ns for path in parts]
    again = build(emulated_pi.target.name)
    assert [path.stat().st_mtime_ns for path in parts] == before
    assert again.python == emulated_pi.python
    assert status(emulated_pi.target.name)["ready"] is True


def test_cli_runs_a_command_and_returns_its_exit_code(emulated_pi):
    done = edgeml("devices", "emulate", emulated_pi.target.name, "--", "python3", "-c",
                  "import platform, sys; print(platform.machine()); sys.exit(3)", timeout=300)
    assert (done.returncode, done.stdout.strip()) == (3, "aarch64"), done.stderr


def test_cli_unknown_program_is_a_one_line_error(emulated_pi):
    done = edgeml("devices", "emulate", emulated_pi.target.name, "--", "no-such-program", timeout=120)
    assert done.returncode == 2
    assert "'no-such-program' is not a program on the emulated rpi4" in done.stderr
    assert "Traceback" not in done.stderr
