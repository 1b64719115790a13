"""Turning what users pass on the command line (model files, a manifest, its directory) into model files."""

from __future__ import annotations

from pathlib import Path
from typing import List

from edgeml_runtime import EdgeMLError, formats
from edgeml_runtime.documents import read_conversion_manifest


def resolve_model_paths(argument: str) -> List[Path]:
    """A model file as is; a conversion manifest (or a directory holding one) as its artifacts."""
    path = Path(argument)
    if path.is_dir():
        if not (path / formats.MANIFEST_FILE).is_file():
            raise EdgeMLError(f"{path} is a directory without {formats.MANIFEST_FILE}; pass a model file or a "
                              "conversion output directory")
        path = path / formats.MANIFEST_FILE
    if path.suffix == ".json":
        return artifacts_of_manifest(path)
    if not path.exists():
        raise EdgeMLError(f"model file not found: {path}")
    if formats.format_of_path(path) is None:
        raise EdgeMLError(f"{path}: not a {'/'.join(formats.MODEL_SUFFIXES)} model, a {formats.MANIFEST_FILE} "
                          "or a conversion directory")
    return [path]


def artifacts_of_manifest(path: Path) -> List[Path]:
    manifest = read_conversion_manifest(path)
    missing = [str(artifact.file) for artifact in manifest.artifacts if not artifact.file.exists()]
    if missing:
        raise EdgeMLError(f"{path} lists files that are missing: {', '.join(missing)}")
    return [artifact.file for artifact in manifest.artifacts if formats.format_of_path(artifact.file)]
