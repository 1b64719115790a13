"""From a path the user gives (model file, conversion manifest, bundle or deployment directory) to the
model file to load, its labels.json, and the version that tags every prediction.

Layouts understood:
- a model file (.tflite/.onnx/.ort), with an optional labels.json beside it;
- `edgeml convert` output: manifest.json (edgeml.manifest/1) listing artifacts, with
  `"metadata": {"labels": "labels.json"}`;
- an unpacked bundle: edgeml-bundle.json (edgeml.bundle/1, carries `version`) and models/;
- a deployment directory: `current -> releases/<version>` holding one of the above.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from edgeml_runtime import formats
from edgeml_runtime.documents import read_bundle_manifest, read_conversion_manifest, read_json_object, schema_of
from edgeml_runtime.errors import ModelLoadError

__all__ = ["ModelSource", "current_release", "file_version", "is_deployment", "locate"]


@dataclass(frozen=True)
class ModelSource:
    model: Path
    labels: Optional[Path]
    version: str
    kind: str  # "model", "manifest" or "bundle"


def is_deployment(path: Path) -> bool:
    return Path(path).is_dir() and os.path.lexists(Path(path) / formats.CURRENT_LINK)


def current_release(deployment: Path) -> Path:
    """The release `current` points at now (resolved, so a later switch does not change the answer)."""
    link = Path(deployment) / formats.CURRENT_LINK
    target = Path(os.path.realpath(link))
    if not target.is_dir():
        raise ModelLoadError(f"{link} points at {os.readlink(link) if link.is_symlink() else target}, which is "
                             "not a release directory; redeploy or roll back with edgeml deploy")
    return target


def locate(path, *, artifact: Optional[str] = None) -> ModelSource:
    path = Path(path)
    if not os.path.lexists(path):
        raise ModelLoadError(f"not found: {path}")
    if path.is_dir():
        return _locate_dir(path, artifact)
    if path.suffix.lower() == ".json":
        return _locate_json(path, artifact)
    if formats.format_of_path(path):
        labels = path.parent / formats.LABELS_FILE
        return ModelSource(path, labels if labels.is_file() else None, file_version(path), "model")
    raise ModelLoadError(f"{path}: pass a .tflite/.onnx/.ort model, a manifest.json, a bundle or a "
                         "deployment directory")


def _locate_dir(path: Path, artifact: Optional[str]) -> ModelSource:
    if is_deployment(path):
        release = current_release(path)
        source = _locate_dir(release, artifact)
        return source if source.kind == "bundle" else _with_version(source, release.name)
    if (path / formats.BUNDLE_MANIFEST_FILE).is_file():
        return _locate_bundle(path / formats.BUNDLE_MANIFEST_FILE, artifact)
    if (path / formats.MANIFEST_FILE).is_file():
        return _locate_manifest(path / formats.MANIFEST_FILE, artifact)
    if (path / "models").is_dir():
        return _locate_dir(path / "models", artifact)
    models = sorted(p for p in path.iterdir() if formats.format_of_path(p) and p.is_file())
    if len(models) == 1:
        return locate(models[0])
    subdirs = [p for p in path.iterdir() if p.is_dir() and (p / formats.BUNDLE_MANIFEST_FILE).is_file()]
    if len(subdirs) == 1:  # a bundle unpacked with its top-level folder
        return _locate_bundle(subdirs[0] / formats.BUNDLE_MANIFEST_FILE, artifact)
    found = ", ".join(p.name for p in models) or "none"
    raise ModelLoadError(f"{path}: no {formats.BUNDLE_MANIFEST_FILE}, {formats.MANIFEST_FILE} or single model file "
                         f"(model files: {found}); pass the model file itself")


def _locate_json(path: Path, artifact: Optional[str]) -> ModelSource:
    schema = schema_of(read_json_object(path))
    if schema.startswith("edgeml.bundle/"):
        return _locate_bundle(path, artifact)
    if schema.startswith("edgeml.manifest/"):
        return _locate_manifest(path, artifact)
    raise ModelLoadError(f"{path}: schema {schema!r} is neither a conversion manifest ({formats.MANIFEST_SCHEMA}) "
                         f"nor a bundle manifest ({formats.BUNDLE_SCHEMA}); pass the model file instead")


def _locate_bundle(path: Path, artifact: Optional[str]) -> ModelSource:
    bundle = read_bundle_manifest(path)
    root = path.parent
    version = bundle.version or root.name
    if (root / "models" / formats.MANIFEST_FILE).is_file():
        return _with_version(_locate_manifest(root / "models" / formats.MANIFEST_FILE, artifact), version, "bundle")
    candidates = [root / entry["path"] for entry in bundle.models]
    chosen = _pick([(c, c.suffix.lower(), c.name) for c in candidates], artifact, path)
    labels = next((p for p in (chosen.parent / formats.LABELS_FILE, root / formats.LABELS_FILE) if p.is_file()),
                  None)
    return ModelSource(chosen, labels, version, "bundle")


def _locate_manifest(path: Path, artifact: Optional[str]) -> ModelSource:
    manifest = read_conversion_manifest(path)
    # Model files only: TFLM sources (format "tflm", a .cc) are for a microcontroller build, not for this runtime.
    usable = [artifact for artifact in manifest.passing if formats.format_of_path(artifact.file)]
    if not usable:
        raise ModelLoadError(f"{path}: every artifact failed its conversion check; fix the conversion first")
    chosen = _pick([(a.file, a.quantization, a.format) for a in usable], artifact, path)
    sha = next((a.sha256 for a in usable if a.file == chosen), None)
    version = sha[:12] if sha else file_version(chosen)
    labels = manifest.labels_file
    return ModelSource(chosen, labels if labels.is_file() else None, version, "manifest")


def _pick(entries: List[tuple], artifact: Optional[str], listed_in: Path) -> Path:
    """The asked-for artifact (path, file name, quantization or format), else the first one runnable here."""
    if artifact:
        matches = [e[0] for e in entries if artifact in (str(e[0]), e[0].name, *e[1:])]
        if not matches:
            names = ", ".join(e[0].name for e in entries)
            raise ModelLoadError(f"{listed_in}: no artifact matches '{artifact}' (artifacts: {names})")
        return _existing(matches[0], listed_in)
    runnable = [e[0] for e in entries if _backend_installed(e[0])]
    if not runnable:
        names = ", ".join(e[0].name for e in entries) or "none"
        raise ModelLoadError(f"{listed_in}: no installed backend runs its models ({names}); "
                             f"{' or '.join(formats.install_hint(fmt) for fmt in formats.FORMATS)}")
    return _existing(runnable[0], listed_in)


def _existing(path: Path, listed_in: Path) -> Path:
    if not path.is_file():
        raise ModelLoadError(f"{listed_in} lists {path.name}, but {path} is missing; re-create or redeploy it")
    return path


def _backend_installed(path: Path) -> bool:
    fmt = formats.format_of_path(path)
    return fmt is not None and formats.backend_installed(fmt)


def _with_version(source: ModelSource, version: str, kind: Optional[str] = None) -> ModelSource:
    return ModelSource(source.model, source.labels, version, kind or source.kind)


def file_version(path: Path) -> str:
    """A model file's version when nothing names one: the first 12 hex digits of its sha256."""
    from edgeml_runtime.files import sha256_file

    return sha256_file(path)[:12]
