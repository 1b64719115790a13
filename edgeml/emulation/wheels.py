"""numpy and the two backends as the device's wheels, and this checkout's runtime, for the emulated Python.

pip downloads and unpacks the device's wheels on the host (`--platform`/`--python-version`), so
nothing is compiled or installed under emulation. Versions follow the host's where it has them, so that
parity tests compare the same backend release on both architectures.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import List

from edgeml_runtime.progress import ProgressCallback, report

from edgeml.emulation.errors import EmulationError
from edgeml.emulation.targets import EmulatedTarget, Layout
from edgeml.emulation.tools import replace_dir, run_tool

__all__ = ["PACKAGES", "download_wheels", "install_runtime_source", "install_wheels", "pip_platform_args",
           "requirements"]

PACKAGES = ["numpy", "ai-edge-litert", "onnxruntime"]
STAMP = ".edgeml-wheels.json"
DOWNLOAD_STEP = "download the device's wheels"
INSTALL_STEP = "unpack the wheels for the device's Python"
RUNTIME_STEP = "install edgeml_runtime for the device's Python"


def requirements() -> List[str]:
    """PACKAGES pinned to the host's installed versions where the host has them."""
    pinned = []
    for name in PACKAGES:
        try:
            pinned.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pinned.append(name)
    return pinned


def pip_platform_args(target: EmulatedTarget) -> List[str]:
    """pip's options for the device's wheels: every manylinux tag the device's glibc can load.

    pip matches `--platform` tags exactly, and projects publish different ones (numpy and onnxruntime
    manylinux_2_28, ai-edge-litert manylinux_2_27 or _2_17, protobuf manylinux2014), so all are listed.
    """
    from edgeml.device.wheels import expand_platforms

    major, newest = target.glibc
    tags = expand_platforms([f"manylinux_{major}_{newest}_{target.machine}"])
    args = ["--only-binary=:all:", "--python-version", target.python, "--implementation", "cp",
            "--abi", target.python_tag]
    for tag in tags:
        args += ["--platform", tag]
    return args


def download_wheels(layout: Layout, progress: ProgressCallback = None) -> bool:
    """The device's wheels (with dependencies) into the cache; True if downloaded now."""
    wanted = {"requirements": requirements()}
    if _stamp(layout.wheels) == wanted:
        return False
    staging = _fresh_staging(layout.wheels)
    report(progress, "wheels", "pip download " + " ".join(wanted["requirements"]))
    run_tool(DOWNLOAD_STEP, [sys.executable, "-m", "pip", "download", "--quiet", "--dest", staging,
                             *pip_platform_args(layout.target), *wanted["requirements"]])
    _write_stamp(staging, wanted)
    replace_dir(staging, layout.wheels)
    return True


def install_wheels(layout: Layout, progress: ProgressCallback = None) -> bool:
    """Unpack the cached wheels into the site directory; True if (re)installed now."""
    wheels = sorted(path.name for path in layout.wheels.glob("*.whl"))
    if not wheels:
        raise EmulationError(INSTALL_STEP, f"no wheels in {layout.wheels}; rebuild with --rebuild")
    wanted = {"wheels": wheels, "requirements": requirements()}
    if _stamp(layout.site) == wanted:
        return False
    staging = _fresh_staging(layout.site)
    report(progress, "wheels", f"unpacking {len(wheels)} wheels")
    run_tool(INSTALL_STEP, [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
                            layout.wheels, "--target", staging, "--no-compile",
                            *pip_platform_args(layout.target), *wanted["requirements"]])
    _write_stamp(staging, wanted)
    replace_dir(staging, layout.site)
    return True


def install_runtime_source(layout: Layout, progress: ProgressCallback = None) -> bool:
    """Copy the host's edgeml_runtime package (pure Python) for the device; True if it changed.

    Checked on every build, so the emulated Pi always runs this checkout's runtime.
    """
    source = _runtime_package_dir()
    files = sorted(path for path in source.rglob("*.py") if "__pycache__" not in path.parts)
    wanted = {"source": str(source), "sha256": _digest(source, files)}
    if _stamp(layout.runtime) == wanted:
        return False
    staging = _fresh_staging(layout.runtime)
    for path in files:
        destination = staging / "edgeml_runtime" / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    _write_stamp(staging, wanted)
    replace_dir(staging, layout.runtime)
    report(progress, "runtime", f"edgeml_runtime copied from {source}")
    return True


def _runtime_package_dir() -> Path:
    spec = importlib.util.find_spec("edgeml_runtime")
    if spec is None or not spec.origin:
        raise EmulationError(RUNTIME_STEP, "edgeml_runtime is not importable here; pip install -e runtime")
    return Path(spec.origin).parent


def _digest(source: Path, files: List[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _fresh_staging(final: Path) -> Path:
    staging = final.with_name(final.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def _stamp(directory: Path):
    try:
        return json.loads((directory / STAMP).read_text())
    except (OSError, ValueError):
        return None


def _write_stamp(directory: Path, content: dict) -> None:
    (directory / STAMP).write_text(json.dumps(content, indent=1))
