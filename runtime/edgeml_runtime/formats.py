"""The facts every part of edgeml agrees on, kept in one place: model formats and the backends that run
them (import module, pip distribution, extra), document schemas and file names, and the layout of a
deployment directory.

Adding a backend or a format means adding a row here and one module (a backend under
`edgeml_runtime/backends/`, an exporter in edgeml_converters); every reader takes the rest from here.
The on-device agent (`edgeml/device/agent.py`) runs alone on the device and keeps its own copies of the
layout and bundle names; a test checks that they match.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, NamedTuple, Optional, Tuple

__all__ = [
    "BACKENDS",
    "BENCH_SCHEMA",
    "BUNDLE_MANIFEST_FILE",
    "BUNDLE_SCHEMA",
    "BUNDLE_SIGNATURE_FILE",
    "CURRENT_LINK",
    "FORMATS",
    "LABELS_FILE",
    "LABELS_SCHEMA",
    "MANIFEST_FILE",
    "MANIFEST_SCHEMA",
    "MODEL_SUFFIXES",
    "OK_MARKER",
    "PREVIOUS_LINK",
    "RECOMMENDED_KEY",
    "RELEASES_DIR",
    "SIGNATURE_NAMESPACE",
    "SOURCE_TARGETS",
    "STAGING_DIR",
    "SUFFIX_FORMATS",
    "TARGETS",
    "TFLM_FILES",
    "TRUSTED_KEYS_FILE",
    "Backend",
    "ExportTarget",
    "ModelFormat",
    "backend_installed",
    "backend_named",
    "backend_versions",
    "backends_for",
    "format_of_magic",
    "format_of_path",
    "install_hint",
]


# Rows are NamedTuples, not dataclasses: `python -m edgeml_runtime bench` reads this module on every start and
# `dataclasses` is an import a bare backend script does not pay for (benchmarks/process_cost.py).
class Backend(NamedTuple):
    """A runtime backend: `module` is imported by `session_module`, which adapts it to a session."""

    name: str
    format: str
    module: str
    distribution: str
    extra: str
    session_module: str
    aliases: Tuple[str, ...] = ()


class ModelFormat(NamedTuple):
    """A model format the runtime runs: `backends` in preferred order, `magic` at bytes 4..8 of a file."""

    name: str
    backends: Tuple[str, ...]
    magic: Tuple[bytes, ...] = ()


class ExportTarget(NamedTuple):
    """What `edgeml convert --to NAME` writes: files with `suffix` that the runtime reads as `format`."""

    name: str
    suffix: str
    format: str


# `tensorflow.lite` is deliberately absent: the runtime never imports TensorFlow.
BACKENDS: Dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("litert", "tflite", "ai_edge_litert", "ai-edge-litert", "litert",
                "edgeml_runtime.backends.litert", aliases=("ai_edge_litert", "ai-edge-litert")),
        Backend("tflite_runtime", "tflite", "tflite_runtime", "tflite-runtime", "litert",
                "edgeml_runtime.backends.litert", aliases=("tflite-runtime",)),
        Backend("onnxruntime", "onnx", "onnxruntime", "onnxruntime", "onnx",
                "edgeml_runtime.backends.onnxrt", aliases=("ort", "onnx")),
    )
}

FORMATS: Dict[str, ModelFormat] = {
    fmt.name: fmt
    for fmt in (
        ModelFormat("tflite", ("litert", "tflite_runtime"), magic=(b"TFL3",)),
        ModelFormat("onnx", ("onnxruntime",), magic=(b"ORTM",)),  # .ort files; plain .onnx has no magic
    )
}

TARGETS: Dict[str, ExportTarget] = {
    target.name: target
    for target in (
        ExportTarget("tflite", ".tflite", "tflite"),
        ExportTarget("onnx", ".onnx", "onnx"),
        ExportTarget("ort", ".ort", "onnx"),  # ONNX Runtime Mobile's flat-buffer form of an ONNX model
    )
}

# What `edgeml convert --to NAME` writes as sources for a microcontroller build: C++ around a full-integer .tflite
# (which stays beside them). The runtime never loads them, so they are not in TARGETS, whose suffixes are the
# files the runtime reads. TFLM_FILES: the files of one model, `stem` being the .tflite's file name without .tflite.
SOURCE_TARGETS: Dict[str, ExportTarget] = {
    target.name: target for target in (ExportTarget("tflm", "_model_data.cc", "tflm"),)
}
TFLM_FILES: Tuple[str, ...] = ("{stem}_model_data.cc", "{stem}_model_data.h", "{stem}_ops.h", "{stem}_arena.h",
                               "{stem}_tflm.md")

# Suffix -> runtime format, for every file the runtime loads.
SUFFIX_FORMATS: Dict[str, str] = {target.suffix: target.format for target in TARGETS.values()}
MODEL_SUFFIXES: Tuple[str, ...] = tuple(SUFFIX_FORMATS)

# Documents (see DESIGN.md) and their file names.
BENCH_SCHEMA = "edgeml.bench/1"
MANIFEST_SCHEMA = "edgeml.manifest/1"
BUNDLE_SCHEMA = "edgeml.bundle/1"
LABELS_SCHEMA = "edgeml.labels/1"
MANIFEST_FILE = "manifest.json"
# The conversion manifest's key for the artifact measured fastest within the accuracy budget (edgeml_runtime.recommend).
RECOMMENDED_KEY = "recommended"
LABELS_FILE = "labels.json"
BUNDLE_MANIFEST_FILE = "edgeml-bundle.json"
# A signed bundle's second member: an OpenSSH signature (`ssh-keygen -Y sign`, namespace SIGNATURE_NAMESPACE) of
# the manifest's exact bytes; the manifest holds every other file's sha256.
BUNDLE_SIGNATURE_FILE = "edgeml-bundle.json.sig"
SIGNATURE_NAMESPACE = "edgeml-bundle"

# A deployment directory: `current` and `previous` link into `releases/<version>/`; uploads land in `staging/`;
# a release is complete once it holds OK_MARKER.
CURRENT_LINK = "current"
PREVIOUS_LINK = "previous"
RELEASES_DIR = "releases"
STAGING_DIR = "staging"
OK_MARKER = ".edgeml-ok"
# The keys a device accepts bundle signatures from (OpenSSH allowed-signers format), pinned by `deploy --trust`.
TRUSTED_KEYS_FILE = "trusted_keys"


def format_of_path(path) -> Optional[str]:
    """'tflite' or 'onnx' from a file name's suffix; None for anything else."""
    return SUFFIX_FORMATS.get(Path(path).suffix.lower())


def format_of_magic(head: bytes) -> Optional[str]:
    """The format whose identifier sits at bytes 4..8 of `head`, if any."""
    return next((fmt.name for fmt in FORMATS.values() if head[4:8] in fmt.magic), None)


def backend_named(name: str) -> Optional[Backend]:
    """A backend by its name or one of its aliases."""
    if name in BACKENDS:
        return BACKENDS[name]
    return next((backend for backend in BACKENDS.values() if name in backend.aliases), None)


def backends_for(fmt: str) -> Tuple[str, ...]:
    """Backend names that run `fmt`, in preferred order."""
    return FORMATS[fmt].backends


def install_hint(fmt: str) -> str:
    """The pip command that brings the preferred backend for `fmt`."""
    return f"pip install 'edgeml-runtime[{BACKENDS[FORMATS[fmt].backends[0]].extra}]'"


def backend_installed(fmt: str) -> bool:
    """Whether any backend for `fmt` is installed (looked up, not imported)."""
    import importlib.util

    return any(importlib.util.find_spec(BACKENDS[name].module) is not None for name in FORMATS[fmt].backends)


def backend_versions() -> Dict[str, Optional[str]]:
    """Every registered backend's installed version by name (None when it is not installed), read from package
    metadata: nothing is imported."""
    from importlib import metadata  # here: importing metadata costs ~20 ms, and only --version and select need it

    versions: Dict[str, Optional[str]] = {}
    for name, backend in BACKENDS.items():
        try:
            versions[name] = metadata.version(backend.distribution)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
