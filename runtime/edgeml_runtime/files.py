"""Files and folders shared by the runtime and the packages built on it (converters, edgeml)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

__all__ = ["cache_root", "sha256_file"]


def sha256_file(path: Union[str, os.PathLike]) -> str:
    import hashlib  # here: the backends import the runtime on every bench start-up, hashing is rare

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """Where big reusable things live (wheels, the emulated Pi, benchmark models): $EDGEML_CACHE, else
    ~/.cache/edgeml."""
    root = os.environ.get("EDGEML_CACHE")
    return Path(root).expanduser() if root else Path(os.path.expanduser("~")) / ".cache" / "edgeml"
