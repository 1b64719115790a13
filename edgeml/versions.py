"""Versions of edgeml and the packages it drives, read from metadata (nothing heavy is imported)."""

from __future__ import annotations

from importlib import metadata

from edgeml_runtime.formats import BACKENDS

from edgeml import __version__

# Distributions reported by `edgeml --version` and `edgeml doctor`, in display order: ours, every runtime
# backend, then what the converters drive.
REPORTED = [
    "edgeml-runtime",
    "edgeml-converters",
    *dict.fromkeys(backend.distribution for backend in BACKENDS.values()),
    "tensorflow",
    "tf2onnx",
    "onnx",
    "numpy",
]


def installed_versions() -> dict[str, str]:
    versions = {"edgeml": __version__}
    for name in REPORTED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
