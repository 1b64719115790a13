"""The emulated devices edgeml can build, and where their parts are cached.

A target is a Debian userland of the device's architecture executed by qemu's user-mode emulator with
the device's CPU model. The root filesystem, qemu and wheels are shared by targets that agree on them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

__all__ = ["TARGETS", "EmulatedTarget", "Layout", "cache_root", "get_target"]

# Debian 13's qemu-user: Debian 12's qemu 7.2 segfaults creating a LiteRT interpreter or importing
# onnxruntime, qemu 10 runs both. Its package is a statically linked binary, so it runs on Debian 12.
QEMU_SUITE = "trixie"
QEMU_PACKAGE = "qemu-user"

# Raspberry Pi OS is Debian bookworm: Python 3.11, glibc 2.36.
BOOKWORM_GLIBC = (2, 36)


@dataclass(frozen=True)
class EmulatedTarget:
    name: str
    description: str
    suite: str  # Debian suite of the userland
    debian_arch: str  # Debian's architecture name (arm64)
    machine: str  # what platform.machine() says on the device (aarch64)
    qemu_cpu: str  # qemu's CPU model, the device's core
    python: str  # "3.11": the suite's python3
    glibc: Tuple[int, int]  # the suite's glibc: the newest manylinux tag its wheels may use

    @property
    def qemu_binary_name(self) -> str:
        return f"qemu-{self.machine}"

    @property
    def python_tag(self) -> str:
        return "cp" + self.python.replace(".", "")


_BOOKWORM_ARM64 = {"suite": "bookworm", "debian_arch": "arm64", "machine": "aarch64", "python": "3.11",
                   "glibc": BOOKWORM_GLIBC}

TARGETS: Dict[str, EmulatedTarget] = {
    "rpi4": EmulatedTarget("rpi4", "Raspberry Pi 4 (Cortex-A72), 64-bit Raspberry Pi OS / Debian 12",
                           qemu_cpu="cortex-a72", **_BOOKWORM_ARM64),
    "rpi5": EmulatedTarget("rpi5", "Raspberry Pi 5 (Cortex-A76), 64-bit Raspberry Pi OS / Debian 12",
                           qemu_cpu="cortex-a76", **_BOOKWORM_ARM64),
}


def get_target(name: str) -> EmulatedTarget:
    from edgeml.emulation.errors import EmulationError

    try:
        return TARGETS[name]
    except KeyError:
        known = ", ".join(sorted(TARGETS))
        raise EmulationError("choose target", f"unknown emulated device '{name}'; choose one of: {known}") from None


def cache_root() -> Path:
    """~/.cache/edgeml, or $EDGEML_CACHE (the same root the bundle's wheel cache uses)."""
    if os.environ.get("EDGEML_CACHE"):
        return Path(os.environ["EDGEML_CACHE"]).expanduser()
    return Path(os.path.expanduser("~")) / ".cache" / "edgeml"


@dataclass(frozen=True)
class Layout:
    """Where one target's parts live under the cache directory."""

    target: EmulatedTarget
    root: Path  # <cache>/emulated

    @classmethod
    def for_target(cls, target: EmulatedTarget, cache: Optional[Path] = None) -> Layout:
        return cls(target, (cache or cache_root()) / "emulated")

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def qemu_dir(self) -> Path:
        return self.root / f"qemu-{QEMU_SUITE}"

    @property
    def qemu(self) -> Path:
        return self.qemu_dir / self.target.qemu_binary_name

    @property
    def rootfs(self) -> Path:
        return self.root / f"rootfs-{self.target.suite}-{self.target.debian_arch}"

    @property
    def python(self) -> Path:
        """The device's own Python binary (an aarch64 ELF: run it through qemu, or use `launcher`)."""
        return self.rootfs / "usr" / "bin" / f"python{self.target.python}"

    @property
    def bin_dir(self) -> Path:
        """Launchers (`python3`...) that run the device's Python under qemu with the target's CPU.

        Inside the root filesystem's /usr so that Python finds its standard library next to them.
        """
        return self.rootfs / "usr" / "local" / "edgeml" / self.target.name / "bin"

    @property
    def launcher(self) -> Path:
        return self.bin_dir / "python3"

    @property
    def wheels(self) -> Path:
        return self.root / f"wheels-{self.target.python_tag}-{self.target.machine}"

    @property
    def site(self) -> Path:
        """numpy and the backends, unpacked for the device's Python (on PYTHONPATH when running)."""
        return self.root / f"site-{self.target.python_tag}-{self.target.machine}"

    @property
    def runtime(self) -> Path:
        """A copy of this checkout's edgeml_runtime package (on PYTHONPATH when running)."""
        return self.root / "runtime"
