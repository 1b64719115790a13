"""Launchers: `python3` scripts that run the device's Python under qemu with the device's CPU.

Without binfmt_misc the host kernel cannot execute an aarch64 binary, so everything goes through a
launcher: qemu gets the launcher's own path as argv[0] (`-0 "$0"`), which makes it `sys.executable`.
Subprocesses of the emulated Python (`sys.executable -m ...`, a venv's `bin/python` symlink, pip's
`#!` lines) therefore come back through the launcher and stay emulated.

The launchers set no PYTHONPATH: on their own they are a fresh device's Python (a deploy target);
the runner adds numpy, the backends and edgeml_runtime for its own commands.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import List

from edgeml.emulation.targets import Layout

__all__ = ["LAUNCHER_NAMES", "emulated_marker", "launcher_script", "write_launchers"]

LAUNCHER_NAMES = ["python3", "python", "python{version}"]


def emulated_marker(qemu_version: str) -> str:
    """The value of EDGEML_EMULATED, which the runtime's machine facts report as `emulated`."""
    return f"qemu-user {qemu_version}"


def launcher_script(layout: Layout, qemu_version: str) -> str:
    target = layout.target
    quote = shlex.quote
    return (
        "#!/bin/sh\n"
        f"# Emulated {target.name}: {target.description}.\n"
        "# Written by `edgeml devices emulate`; rebuilt with the cache.\n"
        f"export QEMU_CPU={quote(target.qemu_cpu)}\n"
        f"export EDGEML_EMULATED={quote(emulated_marker(qemu_version))}\n"
        f'exec {quote(str(layout.qemu))} -L {quote(str(layout.rootfs))} -0 "$0" {quote(str(layout.python))} "$@"\n'
    )


def write_launchers(layout: Layout, qemu_version: str) -> List[Path]:
    """Write (or refresh) the launchers; returns their paths."""
    script = launcher_script(layout, qemu_version)
    layout.bin_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in LAUNCHER_NAMES:
        path = layout.bin_dir / name.format(version=layout.target.python)
        if not path.is_file() or path.read_text() != script:
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_text(script)
            temporary.chmod(0o755)
            temporary.replace(path)
        paths.append(path)
    return paths
