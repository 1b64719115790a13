"""Running the host tools the build needs (debootstrap, apt-get, dpkg, pip) with errors that name the step."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import List, Optional, Sequence

from edgeml.emulation.errors import EmulationError

__all__ = ["replace_dir", "require_root", "require_tool", "run_tool"]

# Debian package that provides each host tool, for the install hint.
TOOL_PACKAGES = {"debootstrap": "debootstrap", "dpkg": "dpkg", "apt-get": "apt", "dpkg-deb": "dpkg"}


def require_tool(step: str, name: str) -> str:
    path = shutil.which(name) or next(
        (f"{d}/{name}" for d in ("/usr/sbin", "/sbin") if os.access(f"{d}/{name}", os.X_OK)), None
    )
    if not path:
        package = TOOL_PACKAGES.get(name, name)
        raise EmulationError(step, f"'{name}' is not installed; install it with: apt-get install -y {package}")
    return path


def require_root(step: str, why: str) -> None:
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise EmulationError(step, f"{why} needs root; run the build as root (CI does) or with sudo")


def run_tool(step: str, command: Sequence[str], *, cwd: Optional[Path] = None, env: Optional[dict] = None,
             timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a host command; on failure raise EmulationError with the last lines it printed."""
    try:
        result = subprocess.run(
            [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
    except FileNotFoundError:
        raise EmulationError(step, f"'{command[0]}' is not installed") from None
    except subprocess.TimeoutExpired:
        raise EmulationError(step, f"'{Path(command[0]).name}' did not finish within {timeout:.0f} s") from None
    if result.returncode != 0:
        raise EmulationError(
            step, f"'{Path(command[0]).name}' exited with {result.returncode}: {_tail(result.stderr or result.stdout)}"
        )
    return result


def replace_dir(staging: Path, final: Path) -> None:
    """Move a completely built directory into place, so an interrupted build never looks finished."""
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)


def _tail(text: str, lines: int = 3) -> str:
    kept: List[str] = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no output)"
