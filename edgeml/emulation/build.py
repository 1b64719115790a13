"""Build (or reuse) an emulated device in the cache: qemu, root filesystem, wheels, runtime, launchers.

Every part is built in a staging directory and moved into place when complete, and skipped when the
cached one matches, so the build is idempotent and takes about a second when the cache is warm.
A lock file keeps two builds (say, CI's build step and a test) from working on the cache at once.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from typing import Dict, Iterator

from edgeml_runtime.files import cache_lock
from edgeml_runtime.progress import ProgressCallback, ProgressEvent, report

from edgeml.emulation.errors import EmulationError
from edgeml.emulation.launcher import write_launchers
from edgeml.emulation.mirror import debian_mirror
from edgeml.emulation.qemu import fetch_qemu, qemu_version
from edgeml.emulation.rootfs import build_rootfs, rootfs_ready
from edgeml.emulation.runner import EmulatedDevice
from edgeml.emulation.targets import Layout, get_target
from edgeml.emulation.tools import run_tool
from edgeml.emulation.wheels import download_wheels, install_runtime_source, install_wheels

__all__ = ["build", "status"]

CHECK_STEP = "check the emulated Python"
CHECK_CODE = "import platform, numpy, ai_edge_litert, onnxruntime, edgeml_runtime; print(platform.machine())"


def build(name: str, *, rebuild: bool = False, progress: ProgressCallback = None) -> EmulatedDevice:
    """Build the emulated device `name` (e.g. "rpi4") unless cached; returns it, ready to run commands.

    `progress` receives ProgressEvents: a step's work as it happens ("STEP: what it does"), a note when a
    step that had work to do is done, and one when the device was (re)built.
    """
    layout = Layout.for_target(get_target(name))
    started = time.monotonic()
    with cache_lock(layout.lock_file):
        if rebuild:
            _remove_cached(layout, progress)
        changed = _build_parts(layout, progress)
        device = EmulatedDevice(layout)
        if changed:
            with _step(CHECK_STEP, progress) as step_progress:
                report(step_progress, "check",
                       "python3 -c 'import platform, numpy, ai_edge_litert, onnxruntime, edgeml_runtime'")
                _check(device)
            report(progress, "build", f"{name} built in {time.monotonic() - started:.1f} s under {layout.root}",
                   level="note")
    return device


def status(name: str) -> Dict[str, object]:
    """What of the emulated device `name` is in the cache, without building anything."""
    layout = Layout.for_target(get_target(name))
    return {
        "target": name,
        "description": layout.target.description,
        "cache": str(layout.root),
        "qemu": qemu_version(layout) or None,
        "qemu_cpu": layout.target.qemu_cpu,
        "rootfs": str(layout.rootfs) if rootfs_ready(layout) else None,
        "wheels": sorted(path.name for path in layout.wheels.glob("*.whl")),
        "runtime": layout.runtime.is_dir(),
        "python": str(layout.launcher) if layout.launcher.is_file() else None,
        "ready": bool(qemu_version(layout)) and rootfs_ready(layout) and layout.launcher.is_file(),
    }


def _build_parts(layout: Layout, progress: ProgressCallback) -> bool:
    target = layout.target
    changed = False
    mirror = None
    if not qemu_version(layout) or not rootfs_ready(layout):
        with _step("find the Debian mirror in apt's sources", progress):
            mirror = debian_mirror()
    with _step(f"qemu-user (Debian trixie) for {target.machine}", progress) as step_progress:
        changed |= fetch_qemu(layout, mirror, step_progress)
    with _step(f"Debian {target.suite} {target.debian_arch} root filesystem", progress) as step_progress:
        changed |= build_rootfs(layout, mirror, step_progress)
    with _step(f"{target.machine} wheels for Python {target.python}", progress) as step_progress:
        changed |= download_wheels(layout, step_progress)
        changed |= install_wheels(layout, step_progress)
    with _step("edgeml_runtime and launchers", progress) as step_progress:
        changed |= install_runtime_source(layout, step_progress)
        before = layout.launcher.read_text() if layout.launcher.is_file() else None
        write_launchers(layout, qemu_version(layout))
        changed |= before != layout.launcher.read_text()
    return changed


def _check(device: EmulatedDevice) -> None:
    result = run_tool(CHECK_STEP, device.command(["python3", "-c", CHECK_CODE]), env=device.env(), timeout=300)
    machine = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if machine != device.target.machine:
        raise EmulationError(CHECK_STEP, f"platform.machine() is '{machine}', expected '{device.target.machine}'")


@contextmanager
def _step(name: str, progress: ProgressCallback) -> Iterator[ProgressCallback]:
    """Name a step in errors always, and in progress only when it has work to do: the events of the
    step's work come out as "NAME: message", and a note "NAME: ok (S s)" closes a step that had any."""
    started = time.monotonic()
    worked = []

    def step_progress(event: ProgressEvent) -> None:
        worked.append(True)
        report(progress, event.stage, f"{name}: {event.message}", done=event.done, total=event.total,
               level=event.level)

    try:
        yield step_progress
    except EmulationError:
        raise
    except OSError as error:  # disk full, permissions: still name the step
        raise EmulationError(name, str(error)) from error
    if worked:
        report(progress, "build", f"{name}: ok ({time.monotonic() - started:.1f} s)", level="note")


def _remove_cached(layout: Layout, progress: ProgressCallback) -> None:
    for path in (layout.qemu_dir, layout.rootfs, layout.wheels, layout.site, layout.runtime):
        if path.exists():
            report(progress, "rebuild", f"removing {path}")
            shutil.rmtree(path)
