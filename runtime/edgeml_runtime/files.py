"""Files and folders shared by the runtime and the packages built on it (converters, edgeml)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

__all__ = ["cache_lock", "cache_root", "sha256_file"]


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


@contextmanager
def cache_lock(lock_file: Union[str, os.PathLike]) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created with its folder): one build of a cached thing at a time (CI's
    make target and a test, say), the second waiting for the first. POSIX only, like what is cached."""
    import fcntl  # here: the runtime also imports on machines without it, and nothing else needs it

    Path(lock_file).parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
