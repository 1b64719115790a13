"""The trainer's error type: bad data the user can fix (CLI exit code 2)."""

from __future__ import annotations

from edgeml_runtime.errors import EdgeMLError

__all__ = ["DataError"]


class DataError(EdgeMLError):
    """The data cannot be used for training; the message names the problem and the fix."""
