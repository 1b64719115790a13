"""The runtime's error types. Every error edgeml raises on purpose derives from EdgeMLError."""

from __future__ import annotations

__all__ = [
    "BackendNotInstalled",
    "CheckFailed",
    "EdgeMLError",
    "InputError",
    "ModelLoadError",
    "ModelRunError",
    "first_line",
]


class EdgeMLError(Exception):
    """A problem the user can fix; the message names the problem and the fix. CLI exit code 2."""


class InputError(EdgeMLError, ValueError):
    """Data fed to a model does not match what the model expects (name, shape, dtype, values)."""


class ModelLoadError(EdgeMLError):
    """A model file is missing, corrupt, or of a format no backend reads."""


class ModelRunError(EdgeMLError):
    """The backend failed while running a model that loaded (a damaged file, an unsupported op)."""


class BackendNotInstalled(EdgeMLError, ImportError):
    """The backend a model needs is not installed; the message carries the exact pip command."""


class CheckFailed(EdgeMLError):
    """A check ran and failed (parity, accuracy, smoke test, regression gate). CLI exit code 1."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (at most 400 characters): backends and converters
    put pages of context after it, and a user-facing error is one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:400] if lines else type(error).__name__
