"""The conversion manifest (`edgeml_runtime.formats.MANIFEST_FILE`, schema `MANIFEST_SCHEMA`, see DESIGN.md):
what was converted, from what, how well."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import List, Optional

from edgeml_runtime.files import sha256_file
from edgeml_runtime.formats import MANIFEST_SCHEMA

__all__ = ["artifact_entry", "file_sha256", "manifest_dict", "write_json"]


def file_sha256(path: Path) -> str:
    return sha256_file(path)


def source_sha256(path: Path) -> str:
    """sha256 of a file, or of a SavedModel directory's files (relative names and contents, sorted)."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0" + bytes.fromhex(file_sha256(file)))
    return digest.hexdigest()


def artifact_entry(root: Path, path: Path, fmt: str, mode: str, model, validation: dict, extra=None) -> dict:
    """One artifact: file facts, the tensor specs as the runtime sees them, and its validation."""
    entry = {
        "path": path.relative_to(root).as_posix(),
        "format": fmt,
        "quantization": str(mode),  # a Mode's name, as plain text
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "inputs": [spec.to_dict() for spec in model.inputs],
        "outputs": [spec.to_dict() for spec in model.outputs],
        "validation": validation,
    }
    entry.update(extra or {})
    return entry


def manifest_dict(source, artifacts: List[dict], calibration: Optional[dict], metadata: Optional[dict]) -> dict:
    from edgeml_converters import __version__

    manifest = {
        "schema": MANIFEST_SCHEMA,
        "source": {
            "path": str(source.path),
            "sha256": source_sha256(source.path),
            "kind": source.kind,
            "loader": source.loader,
        },
        "artifacts": artifacts,
        "calibration": calibration,
        "edgeml": __version__,
    }
    if metadata:
        manifest["metadata"] = metadata
    return manifest


def write_json(path: Path, data: dict) -> None:
    """Write through a temporary name and rename, so a reader never sees half a manifest."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(temporary, path)
