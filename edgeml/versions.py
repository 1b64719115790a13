"""Versions of edgeml and the packages it drives, read from metadata (nothing heavy is imported)."""

from __future__ import annotations

from importlib import metadata

from edgeml import __version__

# Distributions reported by `edgeml --version` and `edgeml doctor`, in display order.
REPORTED = [
    "edgeml-runtime",
    "edgeml-converters",
    "ai-edge-litert",
    "tflite-runtime",
    "onnxruntime",
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
