"""The onnx2tf tool environment: a virtual environment of its own under the edgeml cache, built once by
`edgeml setup onnx2tf`.

onnx2tf pins exact versions (TensorFlow 2.19, numpy 1.26, onnxruntime 1.23, ...) that the converters'
environment (a newer TensorFlow, numpy 2) cannot take without being downgraded, so it lives apart and is run
as a subprocess (`onnx2tf_route`). The build is resumable: the venv is made once, pip is idempotent, and the
stamp file with the installed versions is written last, so an interrupted build is never taken as ready; a
rerun reuses a ready environment in a fraction of a second, and `force` rebuilds it from nothing.

Standard library only (plus edgeml_runtime's progress and cache helpers): importing this is cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from edgeml_runtime import EdgeMLError
from edgeml_runtime.files import cache_lock, cache_root
from edgeml_runtime.progress import ProgressCallback, report

from edgeml_converters.manifest import write_json

__all__ = ["ONNX2TF_VERSION", "REQUIREMENTS", "ToolEnv", "ToolEnvError", "build", "problem", "status", "tool_env"]

TOOL = "onnx2tf"
ONNX2TF_VERSION = "1.29.24"
# onnx2tf pins every dependency it converts with exactly (tensorflow==2.19.0, tf-keras, onnx, onnxruntime,
# onnxsim, onnx-graphsurgeon, sng4onnx and the other simple-onnx-processing-tools, ai-edge-litert, numpy,
# protobuf, h5py, psutil, flatbuffers, ...): pinning onnx2tf pins them.
REQUIREMENTS = (f"onnx2tf=={ONNX2TF_VERSION}",)
# Measured on Linux x86_64, Python 3.11: what the one-time build costs the user's disk.
APPROX_SIZE_MB = 2600
STAMP = "edgeml-tool.json"
CHECK_CODE = ("import json, importlib.metadata as m, onnx2tf, tensorflow, onnx, onnxruntime; "
              "print(json.dumps({n: m.version(n) for n in ('onnx2tf', 'tensorflow', 'tf-keras', 'onnx', "
              "'onnxruntime', 'onnxsim', 'numpy')}))")
PIP_TIMEOUT_S = 3600
# pip lines worth showing as progress (the rest is noise: requirement-already-satisfied, index warnings).
PIP_PROGRESS_PREFIXES = ("Collecting ", "Downloading ", "Installing collected packages", "Successfully installed")


class ToolEnvError(EdgeMLError):
    """The tool environment could not be built (pip failed, no network to the package index, disk full)."""


@dataclass(frozen=True)
class ToolEnv:
    """Where the environment lives."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def stamp(self) -> Path:
        return self.root / STAMP

    @property
    def lock_file(self) -> Path:
        return self.root.parent / f"{self.root.name}.lock"

    def stamp_data(self) -> Optional[dict]:
        try:
            data = json.loads(self.stamp.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def ready(self) -> bool:
        """Built completely, for the requirements this edgeml wants."""
        data = self.stamp_data()
        return (data is not None and data.get("requirements") == list(REQUIREMENTS)
                and os.access(self.python, os.X_OK))


def tool_env() -> ToolEnv:
    return ToolEnv(cache_root() / "tools" / TOOL)


def problem() -> Optional[str]:
    """None when the environment is ready, else the one line that says how to make it."""
    if tool_env().ready():
        return None
    return (f"ONNX → TFLite needs the onnx2tf tool environment (about {APPROX_SIZE_MB:,} MB, once): "
            "run `edgeml setup onnx2tf`")


def status() -> Dict[str, object]:
    """What is there, without building anything (`edgeml setup onnx2tf --json`, `edgeml doctor`)."""
    env = tool_env()
    data = env.stamp_data() or {}
    return {"tool": TOOL, "path": str(env.root), "python": str(env.python), "ready": env.ready(),
            "requirements": list(REQUIREMENTS), "versions": data.get("versions"), "size_bytes": data.get("size_bytes"),
            "built_at": data.get("built_at"), "build_seconds": data.get("build_seconds")}


def build(*, force: bool = False, progress: ProgressCallback = None) -> Dict[str, object]:
    """Make the environment unless it is ready (or rebuild it with `force`); returns `status()` plus
    "reused": True when nothing had to be done."""
    env = tool_env()
    started = time.monotonic()
    with cache_lock(env.lock_file):  # one build at a time (CI's make target and a test, say)
        if env.ready() and not force:
            return {**status(), "reused": True}
        try:
            if force and env.root.exists():
                report(progress, "setup", f"removing {env.root}")
                shutil.rmtree(env.root)
            env.stamp.unlink(missing_ok=True)  # whatever happens next, only a finished build is ready
            _create_venv(env, progress)
            _pip_install(env, progress)
            versions = _check(env, progress)
            seconds = round(time.monotonic() - started, 1)
            _write_stamp(env, versions, seconds)
        except OSError as error:  # disk full, permissions: one line, and a rerun resumes
            raise ToolEnvError(f"onnx2tf setup: {error}; fix that and run `edgeml setup onnx2tf` again") from None
    report(progress, "setup", f"onnx2tf {ONNX2TF_VERSION} environment built in {seconds:.0f} s under {env.root}",
           level="note")
    return {**status(), "reused": False}


def _create_venv(env: ToolEnv, progress: ProgressCallback) -> None:
    if os.access(env.python, os.X_OK) and _runs(env.python):
        return  # resuming an interrupted build: keep what pip already installed
    report(progress, "setup", f"creating the virtual environment {env.root}")
    env.root.parent.mkdir(parents=True, exist_ok=True)
    # The base interpreter's venv (sys.executable may itself be a venv's): same Python as edgeml's.
    _run("create the virtual environment", [sys.executable, "-m", "venv", "--clear", str(env.root)], timeout=600)


def _pip_install(env: ToolEnv, progress: ProgressCallback) -> None:
    step = f"pip install {' '.join(REQUIREMENTS)} (TensorFlow 2.19 and onnx2tf's other pinned dependencies)"
    report(progress, "setup", step)
    command = [str(env.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "--progress-bar", "off", *REQUIREMENTS]
    tail: List[str] = []
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env=_pip_environment())
    except OSError as error:
        raise ToolEnvError(f"onnx2tf setup: cannot start pip: {error}") from None
    deadline = time.monotonic() + PIP_TIMEOUT_S
    for line in process.stdout:
        line = line.strip()
        if line and not line.startswith("WARNING: Location"):
            tail = (tail + [line])[-4:]
        if line.startswith(PIP_PROGRESS_PREFIXES):
            report(progress, "pip", line[:200])
        if time.monotonic() > deadline:
            process.kill()
            raise ToolEnvError(f"onnx2tf setup: pip did not finish within {PIP_TIMEOUT_S} s; run it again to resume")
    if process.wait() != 0:
        raise ToolEnvError(f"onnx2tf setup: pip failed ({' | '.join(tail)}); fix that and run `edgeml setup "
                           "onnx2tf` again: it resumes")


def _check(env: ToolEnv, progress: ProgressCallback) -> Dict[str, str]:
    report(progress, "setup", "checking that onnx2tf and TensorFlow import")
    result = _run("check the onnx2tf environment", [str(env.python), "-I", "-c", CHECK_CODE], timeout=600)
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise ToolEnvError(f"onnx2tf setup: the check printed no versions: {result.stdout[-300:]}") from None


def _write_stamp(env: ToolEnv, versions: Dict[str, str], seconds: float) -> None:
    data = {"tool": TOOL, "requirements": list(REQUIREMENTS), "versions": versions,
            "python": sys.version.split()[0], "size_bytes": _tree_size(env.root),  # walked once, here
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "build_seconds": seconds}
    write_json(env.stamp, data)  # written last, through a temporary name: a stamp means a finished build


def _run(step: str, command: List[str], *, timeout: float) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_pip_environment())
    except subprocess.TimeoutExpired:
        raise ToolEnvError(f"onnx2tf setup: {step} did not finish within {timeout:.0f} s") from None
    except OSError as error:
        raise ToolEnvError(f"onnx2tf setup: {step}: {error}") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).strip().splitlines() if line.strip()][-3:]
        raise ToolEnvError(f"onnx2tf setup: {step} failed: {' | '.join(lines) or 'no output'}")
    return result


def _runs(python: Path) -> bool:
    try:
        return subprocess.run([str(python), "-I", "-c", "pass"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _pip_environment() -> Dict[str, str]:
    """edgeml's environment minus what would leak its own packages into the tool's Python."""
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    environment.pop("VIRTUAL_ENV", None)
    return environment


def _tree_size(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total
