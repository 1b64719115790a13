"""The emulated devices edgeml can build, and where their parts are cached.

A target is a Debian userland of the device's architecture executed by qemu's user-mode emulator with
the device's CPU model. The root filesystem, qemu and wheels are shared by targets that agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

from edgeml_runtime.files import cache_root

__all__ = ["EmulatedTarget", "Layout", "cache_root", "emulated_targets", "get_target"]

# Debian 13's qemu-user: Debian 12's qemu 7.2 segfaults creating a LiteRT interpreter or importing
# onnxruntime, qemu 10 runs both. Its package is a statically linked binary, so it runs on Debian 12.
QEMU_SUITE = "trixie"
QEMU_PACKAGE = "qemu-user"


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


def emulated_targets() -> Dict[str, EmulatedTarget]:
    """Every device profile with an `[emulation]` table (devices/*.toml and the user's own profiles)."""
    from edgeml.device.profiles import load_profiles

    return {profile.name: _target(profile) for profile in load_profiles().values() if profile.emulation}


def _target(profile) -> EmulatedTarget:
    emulation = profile.emulation
    major, minor = (int(part) for part in str(emulation["glibc"]).split("."))
    return EmulatedTarget(name=profile.name, description=profile.description, suite=emulation["suite"],
                          debian_arch=emulation["debian_arch"], machine=profile.arch,
                          qemu_cpu=emulation["qemu_cpu"], python=profile.python, glibc=(major, minor))


def get_target(name: str) -> EmulatedTarget:
    from edgeml.emulation.errors import EmulationError

    targets = emulated_targets()
    try:
        return targets[name]
    except KeyError:
        known = ", ".join(sorted(targets))
        raise EmulationError("choose target", f"unknown emulated device '{name}'; choose one of: {known}") from None


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
