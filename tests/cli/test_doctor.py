"""`edgeml doctor` reports what really works, and fails (exit 1) when no backend does."""

from __future__ import annotations

import json
import subprocess
import sys

RUN_DOCTOR = "import sys\n{blocks}\nfrom edgeml.cli import main\nmain(['doctor', '--json'])\n"


def doctor(blocked=()):
    blocks = "\n".join(f"sys.modules[{name!r}] = None" for name in blocked)
    return subprocess.run([sys.executable, "-c", RUN_DOCTOR.format(blocks=blocks)], capture_output=True, text=True,
                          timeout=300)


def test_reports_working_backends_and_versions():
    result = doctor()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    checks = {check["check"]: check for check in report["checks"]}
    assert checks["backend litert"]["ok"] and checks["backend onnxruntime"]["ok"]
    assert not checks["backend tflite_runtime"]["ok"]
    assert report["versions"]["edgeml-runtime"] == "0.1.0"
    assert report["machine"]["arch"]


def test_exit_1_with_the_fix_when_no_backend_works():
    result = doctor(blocked=("ai_edge_litert", "tflite_runtime", "onnxruntime"))
    assert result.returncode == 1
    assert "no runtime backend works: pip install 'edgeml-runtime[litert]'" in result.stderr
    checks = {check["check"]: check for check in json.loads(result.stdout)["checks"]}
    assert not checks["backend onnxruntime"]["ok"]


def test_reports_whether_fleets_can_run():
    """With ansible-core importable the fleet check names the command; blocked, it names the pip install."""
    checks = {check["check"]: check for check in json.loads(doctor().stdout)["checks"]}
    assert checks["fleet (ansible-playbook)"]["ok"] and "ansible" in checks["fleet (ansible-playbook)"]["detail"]
    blocked = {check["check"]: check for check in json.loads(doctor(blocked=("ansible",)).stdout)["checks"]}
    fleet = blocked["fleet (ansible-playbook)"]
    import shutil

    if shutil.which("ansible-playbook") is None:
        assert not fleet["ok"] and "pip install 'edgeml[fleet]'" in fleet["detail"]
    else:  # a system ansible-playbook on PATH is used instead
        assert fleet["ok"] and fleet["detail"].endswith("ansible-playbook")
