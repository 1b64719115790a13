"""Running commands on a built emulated device."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from edgeml.emulation.errors import EmulationError
from edgeml.emulation.launcher import emulated_marker
from edgeml.emulation.qemu import qemu_version
from edgeml.emulation.targets import Layout

__all__ = ["EmulatedDevice"]

PYTHON_NAMES = {"python", "python3"}
DEVICE_PATH = ["usr/local/bin", "usr/bin", "bin", "usr/sbin", "sbin"]


class EmulatedDevice:
    """A built emulated device: its launchers, and `run()` for commands on it.

    `python`, `python3` and `python3.X` name the device's Python, with numpy, both backends and
    edgeml_runtime importable; other names are the device's own (aarch64) programs, such as `uname`.
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self.target = layout.target
        self.qemu_version = qemu_version(layout)
        if not self.qemu_version or not layout.launcher.is_file():
            raise EmulationError("open the emulated device", f"{self.target.name} is not built; run: "
                                 f"edgeml devices emulate {self.target.name}")

    @property
    def python(self) -> Path:
        """The launcher of the device's bare Python (no PYTHONPATH added): what a deploy target runs."""
        return self.layout.launcher

    @property
    def bin_dir(self) -> Path:
        """Put first on PATH (e.g. for an SSH login) to make `python3` the device's Python."""
        return self.layout.bin_dir

    @property
    def emulated(self) -> str:
        return emulated_marker(self.qemu_version)

    def python_path(self) -> List[str]:
        return [str(self.layout.runtime), str(self.layout.site)]

    def env(self, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        """The environment for a command: the runtime and wheels on PYTHONPATH, the emulator marked."""
        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = os.pathsep.join(self.python_path())
        env["QEMU_CPU"] = self.target.qemu_cpu
        env["EDGEML_EMULATED"] = self.emulated
        return env

    def command(self, args: Sequence[str]) -> List[str]:
        """The host command line that runs `args` on the device."""
        if not args:
            raise EmulationError("run on the emulated device", "no command given (e.g. -- python -V)")
        program, rest = args[0], list(args[1:])
        if program in PYTHON_NAMES or program == f"python{self.target.python}":
            return [str(self.layout.launcher), *rest]
        binary = self._device_program(program)
        return [str(self.layout.qemu), "-L", str(self.layout.rootfs), "-0", program, str(binary), *rest]

    def run(self, args: Sequence[str], *, env: Optional[Mapping[str, str]] = None,
            **kwargs) -> subprocess.CompletedProcess:
        """subprocess.run of `args` on the device (kwargs as for subprocess.run)."""
        return subprocess.run(self.command(args), env=self.env(env), **kwargs)

    def _device_program(self, program: str) -> Path:
        root = self.layout.rootfs
        candidates = [root / program.lstrip("/")] if "/" in program else [root / d / program for d in DEVICE_PATH]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise EmulationError("run on the emulated device", f"'{program}' is not a program on the emulated "
                             f"{self.target.name}; use python, python3 or a program in its /usr/bin")
