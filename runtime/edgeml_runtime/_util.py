"""Small helpers shared by the runtime and the packages built on it (converters, edgeml)."""

from __future__ import annotations

import os
from typing import Union

__all__ = ["first_line", "sha256_file"]


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (at most 400 characters): backends and converters
    put pages of context after it, and a user-facing error is one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:400] if lines else type(error).__name__


def sha256_file(path: Union[str, os.PathLike]) -> str:
    import hashlib  # here: the backends import this module on every bench start-up, hashing is rare

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
