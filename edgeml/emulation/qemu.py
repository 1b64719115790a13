"""qemu's user-mode emulator, taken from Debian 13's `qemu-user` package.

apt is pointed at the trixie suite of the machine's own Debian mirror with a temporary sources list,
lists directory and cache, so the machine's apt state is untouched. The package's binaries are
statically linked, so they run on the Debian 12 host.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from edgeml_runtime.progress import ProgressCallback, report

from edgeml.emulation.errors import EmulationError
from edgeml.emulation.targets import QEMU_PACKAGE, QEMU_SUITE, Layout
from edgeml.emulation.tools import replace_dir, require_tool, run_tool

__all__ = ["fetch_qemu", "qemu_version"]

STEP = f"download {QEMU_PACKAGE} from Debian {QEMU_SUITE}"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
VERSION_FILE = "VERSION"


def fetch_qemu(layout: Layout, mirror: str, progress: ProgressCallback = None) -> bool:
    """Put qemu-<machine> into the cache unless it is there; True if it was fetched now."""
    if qemu_version(layout):
        return False
    apt_get = require_tool(STEP, "apt-get")
    dpkg_deb = require_tool(STEP, "dpkg-deb")
    layout.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="apt-", dir=layout.root) as work:
        work_dir = Path(work)
        options = _private_apt_options(work_dir, mirror)
        report(progress, "qemu", f"updating a private package list for Debian {QEMU_SUITE}")
        run_tool(STEP, [apt_get, *options, "-qq", "--error-on=any", "update"])
        report(progress, "qemu", f"downloading {QEMU_PACKAGE}")
        run_tool(STEP, [apt_get, *options, "-qq", "download", QEMU_PACKAGE], cwd=work_dir)
        debs = sorted(work_dir.glob(f"{QEMU_PACKAGE}_*.deb"))
        if not debs:
            raise EmulationError(STEP, f"apt-get download left no {QEMU_PACKAGE}_*.deb")
        unpacked = work_dir / "unpacked"
        run_tool(STEP, [dpkg_deb, "-x", debs[0], unpacked])
        binary = unpacked / "usr" / "bin" / layout.target.qemu_binary_name
        if not binary.is_file():
            raise EmulationError(STEP, f"{debs[0].name} has no usr/bin/{binary.name}")
        staging = work_dir / "qemu"
        staging.mkdir()
        shutil.copy2(binary, staging / binary.name)
        version = _version_of(staging / binary.name)
        (staging / VERSION_FILE).write_text(version + "\n")
        replace_dir(staging, layout.qemu_dir)
    return True


def qemu_version(layout: Layout) -> str:
    """The cached qemu's version ("10.0.13"), or "" when it is not (completely) there."""
    version_file = layout.qemu_dir / VERSION_FILE
    if not (layout.qemu.is_file() and version_file.is_file()):
        return ""
    return version_file.read_text().strip()


def _private_apt_options(work_dir: Path, mirror: str) -> list:
    (work_dir / "lists" / "partial").mkdir(parents=True)
    (work_dir / "cache" / "archives" / "partial").mkdir(parents=True)
    (work_dir / "sources.list.d").mkdir()
    signed_by = f"[signed-by={DEBIAN_KEYRING}] " if os.path.exists(DEBIAN_KEYRING) else ""
    sources = work_dir / "sources.list"
    sources.write_text(f"deb {signed_by}{mirror} {QEMU_SUITE} main\n")
    settings = {
        "Dir::Etc::SourceList": sources,
        "Dir::Etc::SourceParts": work_dir / "sources.list.d",
        "Dir::State::Lists": work_dir / "lists",
        "Dir::Cache": work_dir / "cache",
        "Debug::NoLocking": "1",  # the private directories need no lock; the machine's stay unlocked
        "APT::Sandbox::User": "root" if os.geteuid() == 0 else "",
        "Acquire::Languages": "none",
    }
    return [arg for key, value in settings.items() if value != "" for arg in ("-o", f"{key}={value}")]


def _version_of(binary: Path) -> str:
    result = run_tool(STEP, [binary, "--version"])
    match = re.search(r"version (\d+(?:\.\d+)+)", result.stdout)
    if not match:
        raise EmulationError(STEP, f"cannot read the version from '{binary.name} --version'")
    return match.group(1)
