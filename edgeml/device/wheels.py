"""Wheels for another machine: `pip download` for the device's platform tags and Python version.

Downloads are cached under ~/.cache/edgeml/wheels (or $EDGEML_CACHE/wheels); a bundle is first
resolved from the cache alone, and only goes to the package index (as configured in the machine's pip
configuration) when something is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable, List

from edgeml_runtime.errors import EdgeMLError
from edgeml_runtime.files import cache_root

__all__ = ["WheelDownloadError", "cache_dir", "download_wheels", "expand_platforms"]

OLDEST_MANYLINUX_MINOR = 17  # manylinux2014, the oldest tag current numpy/onnxruntime/litert use
LEGACY_ALIASES = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


class WheelDownloadError(EdgeMLError):
    """pip could not find wheels for the device's platform and Python."""


def cache_dir() -> Path:
    return cache_root() / "wheels"


def expand_platforms(platforms: Iterable[str]) -> List[str]:
    """Every tag a device accepts: pip's --platform takes tags literally, while pip on the device itself
    accepts every older manylinux_2_N tag (and the legacy manylinux2014 alias) as well."""
    tags: List[str] = []
    for tag in platforms:
        match = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", tag)
        if not match:
            tags.append(tag)
            continue
        newest, arch = int(match.group(1)), match.group(2)
        for minor in range(newest, OLDEST_MANYLINUX_MINOR - 1, -1):
            tags.append(f"manylinux_2_{minor}_{arch}")
            if minor in LEGACY_ALIASES:
                tags.append(f"{LEGACY_ALIASES[minor]}_{arch}")
    return list(dict.fromkeys(tags))


def download_wheels(requirements: List[str], platforms: Iterable[str], python: str, dest: Path) -> List[Path]:
    """Download wheels for `requirements` and their dependencies into `dest`; return the files."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeml-wheels-") as tmp:
        base = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", python,
                "--implementation", "cp", "--dest", tmp, "--find-links", str(cache), "--quiet",
                "--disable-pip-version-check"]
        for tag in expand_platforms(platforms):
            base += ["--platform", tag]
        offline = subprocess.run([*base, "--no-index", *requirements], capture_output=True, text=True)
        if offline.returncode != 0:
            online = subprocess.run([*base, *requirements], capture_output=True, text=True)
            if online.returncode != 0:
                raise WheelDownloadError(_explain(online.stderr, requirements, platforms, python))
        files = sorted(Path(tmp).glob("*.whl"))
        dest.mkdir(parents=True, exist_ok=True)
        for wheel in files:
            if not (cache / wheel.name).exists():
                shutil.copy2(wheel, cache / wheel.name)
            shutil.copyfile(wheel, dest / wheel.name)
        return [dest / wheel.name for wheel in files]


def _explain(stderr: str, requirements, platforms, python) -> str:
    if "No module named pip" in stderr:
        return "pip is needed to download the device's wheels: install pip, or build with --no-wheels"
    missing = re.findall(r"No matching distribution found for (\S+)", stderr)
    what = missing[0] if missing else " ".join(requirements)
    tags = ", ".join(platforms)
    last = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    return (f"no wheel of {what} for Python {python} on {tags} ({last}); check the device profile's python and "
            "platforms, add an index that has such wheels to your pip configuration, or build with --no-wheels")
