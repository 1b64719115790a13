"""The device's Debian userland: debootstrap's first stage, then every downloaded package unpacked.

`debootstrap --foreign` only downloads and unpacks the base, so it needs no emulation; unpacking the
remaining packages with `dpkg-deb -x` gives a runnable Python without running any maintainer script
(which would need the emulator and a chroot).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edgeml_runtime.progress import ProgressCallback, report

from edgeml.emulation.targets import Layout
from edgeml.emulation.tools import replace_dir, require_root, require_tool, run_tool

__all__ = ["INCLUDE", "build_rootfs", "rootfs_ready"]

STEP = "build the Debian root filesystem"
# python3.11-venv brings ensurepip's wheels (python3-pip-whl, python3-setuptools-whl), so that a
# deploy can create a virtual environment and install wheels offline, as on a real Pi.
INCLUDE = ["python3", "python3.11-venv"]
STAMP = ".edgeml-rootfs.json"
# Empty mount points and home directories are removed, so that qemu (which looks a path up in the
# root filesystem first) falls through to the host's /tmp, /proc, /dev and the user's files.
HOST_PASSTHROUGH = ["dev", "proc", "sys", "run", "tmp", "home", "root", "mnt", "media"]


def rootfs_ready(layout: Layout) -> bool:
    stamp = layout.rootfs / STAMP
    return stamp.is_file() and json.loads(stamp.read_text()) == _recipe(layout)


def build_rootfs(layout: Layout, mirror: str, progress: ProgressCallback = None) -> bool:
    """Build the root filesystem unless the cached one matches the recipe; True if built now."""
    if rootfs_ready(layout):
        return False
    debootstrap = require_tool(STEP, "debootstrap")
    dpkg_deb = require_tool(STEP, "dpkg-deb")
    require_root(STEP, "debootstrap")
    target = layout.target
    staging = layout.rootfs.with_name(layout.rootfs.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.parent.mkdir(parents=True, exist_ok=True)
    report(progress, "rootfs", f"debootstrap --foreign {target.suite} {target.debian_arch} (downloads the packages)")
    run_tool(STEP, [debootstrap, "--foreign", f"--arch={target.debian_arch}", "--variant=minbase",
                    f"--include={','.join(INCLUDE)}", target.suite, staging, mirror], timeout=1800)
    debs = sorted((staging / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    for index, deb in enumerate(debs, 1):
        report(progress, "rootfs", "unpacking the packages", done=index, total=len(debs))
        run_tool(STEP, [dpkg_deb, "-x", deb, staging])
        deb.unlink()
    _tidy(staging)
    (staging / STAMP).write_text(json.dumps(_recipe(layout)))
    replace_dir(staging, layout.rootfs)
    return True


def _recipe(layout: Layout) -> dict:
    target = layout.target
    return {"suite": target.suite, "arch": target.debian_arch, "include": INCLUDE}


def _tidy(root: Path) -> None:
    # debootstrap's own bookkeeping and the mirror's address are not part of the device.
    shutil.rmtree(root / "debootstrap", ignore_errors=True)
    (root / "etc" / "apt" / "sources.list").unlink(missing_ok=True)
    for name in HOST_PASSTHROUGH:
        path = root / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
