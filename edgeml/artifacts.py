"""Turning what users pass on the command line (model files, a manifest, its directory) into model files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

from edgeml_runtime import EdgeMLError

MODEL_SUFFIXES = (".tflite", ".onnx", ".ort")
MANIFEST_NAME = "manifest.json"


def resolve_model_paths(argument: str) -> List[Path]:
    """A model file as is; a conversion manifest (or a directory holding one) as its artifacts."""
    path = Path(argument)
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file():
            raise EdgeMLError(
                f"{path} is a directory without {MANIFEST_NAME}; pass a model file or a conversion output directory"
            )
        path = path / MANIFEST_NAME
    if path.suffix == ".json":
        return artifacts_of_manifest(path)
    if not path.exists():
        raise EdgeMLError(f"model file not found: {path}")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise EdgeMLError(f"{path}: not a .tflite/.onnx/.ort model, a manifest.json or a conversion directory")
    return [path]


def artifacts_of_manifest(path: Path) -> List[Path]:
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise EdgeMLError(f"manifest not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EdgeMLError(f"{path} is not valid JSON ({error}); regenerate it with edgeml convert") from None
    if not str(manifest.get("schema", "")).startswith("edgeml.manifest/"):
        raise EdgeMLError(f"{path} is not an edgeml conversion manifest (no 'edgeml.manifest/1' schema)")
    paths = [path.parent / artifact["path"] for artifact in manifest.get("artifacts", [])]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise EdgeMLError(f"{path} lists files that are missing: {', '.join(missing)}")
    return [p for p in paths if p.suffix in MODEL_SUFFIXES]
