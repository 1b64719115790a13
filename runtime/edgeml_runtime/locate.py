"""From a path the user gives (model file, conversion manifest, bundle or deployment directory) to the
model file to load, its labels.json, and the version that tags every prediction.

With a conversion manifest and no artifact asked for, the model is the manifest's measured recommendation
(`recommended`, written by `edgeml convert` / `edgeml select`) when a backend here runs it; otherwise the
first artifact that passed its check and runs here, and `ModelSource.note` says why.

Layouts understood:
- a model file (.tflite/.onnx/.ort), with an optional labels.json beside it;
- `edgeml convert` output: manifest.json (edgeml.manifest/1) listing artifacts, with
  `"metadata": {"labels": "labels.json"}`;
- an unpacked bundle: edgeml-bundle.json (edgeml.bundle/1, carries `version`) and models/;
- a deployment directory: `current -> releases/<version>` holding one of the above.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from edgeml_runtime import formats
from edgeml_runtime.documents import (
    ArtifactEntry,
    ConversionManifest,
    read_bundle_manifest,
    read_conversion_manifest,
    read_json_object,
    schema_of,
)
from edgeml_runtime.errors import ModelLoadError

__all__ = ["DefaultChoice", "ModelSource", "current_release", "default_artifact", "file_version", "is_deployment",
           "locate", "recommended_artifact"]


@dataclass(frozen=True)
class ModelSource:
    model: Path
    labels: Optional[Path]
    version: str
    kind: str  # "model", "manifest" or "bundle"
    # Why the model is not the manifest's recommended one (no recommendation, or it cannot run here); None
    # when it is, or when nothing was to choose.
    note: Optional[str] = None
    recommended: bool = False  # the manifest's measured recommendation


@dataclass(frozen=True)
class DefaultChoice:
    """The artifact a manifest gives when none is asked for, and why (`note`) when it is not the recommended."""

    artifact: ArtifactEntry
    recommended: bool
    note: Optional[str] = None


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


def locate(path, *, artifact: Optional[str] = None, backend: Optional[str] = None) -> ModelSource:
    """What to load for `path`. `artifact` picks one of a manifest's (path, file name, quantization or
    format); `backend` (a backend name) limits the default choice to the artifacts that backend runs."""
    path = Path(path)
    if not os.path.lexists(path):
        raise ModelLoadError(f"not found: {path}")
    if path.is_dir():
        return _locate_dir(path, artifact, backend)
    if path.suffix.lower() == ".json":
        return _locate_json(path, artifact, backend)
    if formats.format_of_path(path):
        labels = path.parent / formats.LABELS_FILE
        return ModelSource(path, labels if labels.is_file() else None, file_version(path), "model")
    raise ModelLoadError(f"{path}: pass a .tflite/.onnx/.ort model, a manifest.json, a bundle or a "
                         "deployment directory")


def _locate_dir(path: Path, artifact: Optional[str], backend: Optional[str]) -> ModelSource:
    if is_deployment(path):
        release = current_release(path)
        source = _locate_dir(release, artifact, backend)
        return source if source.kind == "bundle" else _with_version(source, release.name)
    if (path / formats.BUNDLE_MANIFEST_FILE).is_file():
        return _locate_bundle(path / formats.BUNDLE_MANIFEST_FILE, artifact, backend)
    if (path / formats.MANIFEST_FILE).is_file():
        return _locate_manifest(path / formats.MANIFEST_FILE, artifact, backend)
    if (path / "models").is_dir():
        return _locate_dir(path / "models", artifact, backend)
    models = sorted(p for p in path.iterdir() if formats.format_of_path(p) and p.is_file())
    if len(models) == 1:
        return locate(models[0])
    subdirs = [p for p in path.iterdir() if p.is_dir() and (p / formats.BUNDLE_MANIFEST_FILE).is_file()]
    if len(subdirs) == 1:  # a bundle unpacked with its top-level folder
        return _locate_bundle(subdirs[0] / formats.BUNDLE_MANIFEST_FILE, artifact, backend)
    found = ", ".join(p.name for p in models) or "none"
    raise ModelLoadError(f"{path}: no {formats.BUNDLE_MANIFEST_FILE}, {formats.MANIFEST_FILE} or single model file "
                         f"(model files: {found}); pass the model file itself")


def _locate_json(path: Path, artifact: Optional[str], backend: Optional[str]) -> ModelSource:
    schema = schema_of(read_json_object(path))
    if schema.startswith("edgeml.bundle/"):
        return _locate_bundle(path, artifact, backend)
    if schema.startswith("edgeml.manifest/"):
        return _locate_manifest(path, artifact, backend)
    raise ModelLoadError(f"{path}: schema {schema!r} is neither a conversion manifest ({formats.MANIFEST_SCHEMA}) "
                         f"nor a bundle manifest ({formats.BUNDLE_SCHEMA}); pass the model file instead")


def _locate_bundle(path: Path, artifact: Optional[str], backend: Optional[str]) -> ModelSource:
    bundle = read_bundle_manifest(path)
    root = path.parent
    version = bundle.version or root.name
    if (root / "models" / formats.MANIFEST_FILE).is_file():
        source = _locate_manifest(root / "models" / formats.MANIFEST_FILE, artifact, backend)
        return _with_version(source, version, "bundle")
    candidates = [root / entry["path"] for entry in bundle.models]
    chosen = _pick([(c, c.suffix.lower(), c.name) for c in candidates], artifact, path, backend)
    labels = next((p for p in (chosen.parent / formats.LABELS_FILE, root / formats.LABELS_FILE) if p.is_file()),
                  None)
    return ModelSource(chosen, labels, version, "bundle")


def _locate_manifest(path: Path, artifact: Optional[str], backend: Optional[str]) -> ModelSource:
    manifest = read_conversion_manifest(path)
    # Model files only: TFLM sources (format "tflm", a .cc) are for a microcontroller build, not for this runtime.
    usable = [artifact for artifact in manifest.passing if formats.format_of_path(artifact.file)]
    if not usable:
        raise ModelLoadError(f"{path}: every artifact failed its conversion check; fix the conversion first")
    labels = manifest.labels_file
    labels = labels if labels.is_file() else None
    if artifact:
        chosen = _pick([(a.file, a.quantization, a.format) for a in usable], artifact, path)
        entry = next(a for a in usable if a.file == chosen)
        recommended = entry == recommended_artifact(manifest)
        return ModelSource(chosen, labels, _artifact_version(entry), "manifest", recommended=recommended)
    choice = default_artifact(manifest, lambda entry: _why_not_here(entry.file, backend))
    if choice is None:
        raise _nothing_runs([a.file for a in usable], path, backend)
    chosen = _existing(choice.artifact.file, path)
    return ModelSource(chosen, labels, _artifact_version(choice.artifact), "manifest", note=choice.note,
                       recommended=choice.recommended)


def recommended_artifact(manifest: ConversionManifest) -> Optional[ArtifactEntry]:
    """The artifact the manifest's `recommended` names (the reader already refused one naming anything else)."""
    if manifest.recommended is None:
        return None
    return next((a for a in manifest.artifacts if a.path == manifest.recommended["path"]), None)


def default_artifact(manifest: ConversionManifest, why_not: Callable[[ArtifactEntry], Optional[str]]
                     ) -> Optional[DefaultChoice]:
    """The artifact to use when none is asked for: the recommended one when it passed its check and `why_not`
    (the reason an artifact cannot run where it is going, or None) has nothing against it; else the first
    passing model file `why_not` accepts, with a note saying why. None when no artifact qualifies."""
    models = [a for a in manifest.passing if formats.format_of_path(a.file)]
    usable = [a for a in models if why_not(a) is None]
    recommended = recommended_artifact(manifest)
    if recommended is not None and recommended in usable:
        return DefaultChoice(recommended, True)
    if not usable:
        return None
    first = usable[0]
    if recommended is None:
        note = (f"{manifest.path.name} has no measured recommendation; using the first passing artifact "
                f"{first.path} (measure them with: edgeml select {manifest.directory})")
    elif not recommended.passed:
        note = f"the recommended {recommended.path} failed its conversion check; using {first.path}"
    elif recommended not in models:
        note = f"the recommended {recommended.path} is not a model file the runtime loads; using {first.path}"
    else:
        note = f"the recommended {recommended.path} {why_not(recommended)}; using {first.path}"
    return DefaultChoice(first, False, note)


def _why_not_here(path: Path, backend: Optional[str]) -> Optional[str]:
    """Why this machine cannot run `path` (with `backend`, when one is asked for); None when it can."""
    fmt = formats.format_of_path(path)
    if fmt is None:
        return "is not a model file the runtime loads"
    if backend:
        chosen = formats.backend_named(backend)
        if chosen is not None and chosen.format != fmt:
            return f"needs {' or '.join(formats.backends_for(fmt))}, not --backend {backend}"
    if not formats.backend_installed(fmt):
        return f"needs a {fmt} backend, not installed here ({formats.install_hint(fmt)})"
    return None


def _artifact_version(entry: ArtifactEntry) -> str:
    return entry.sha256[:12] if entry.sha256 else file_version(entry.file)


def _pick(entries: List[tuple], artifact: Optional[str], listed_in: Path, backend: Optional[str] = None) -> Path:
    """The asked-for artifact (path, file name, quantization or format), else the first one runnable here."""
    if artifact:
        matches = [e[0] for e in entries if artifact in (str(e[0]), e[0].name, *e[1:])]
        if not matches:
            names = ", ".join(e[0].name for e in entries)
            raise ModelLoadError(f"{listed_in}: no artifact matches '{artifact}' (artifacts: {names})")
        return _existing(matches[0], listed_in)
    runnable = [e[0] for e in entries if _why_not_here(e[0], backend) is None]
    if not runnable:
        raise _nothing_runs([e[0] for e in entries], listed_in, backend)
    return _existing(runnable[0], listed_in)


def _nothing_runs(files: List[Path], listed_in: Path, backend: Optional[str]) -> ModelLoadError:
    names = ", ".join(file.name for file in files) or "none"
    if backend and any(_backend_installed(file) for file in files):
        return ModelLoadError(f"{listed_in}: --backend {backend} runs none of its models ({names}); pass another "
                              "--backend or none")
    return ModelLoadError(f"{listed_in}: no installed backend runs its models ({names}); "
                          f"{' or '.join(formats.install_hint(fmt) for fmt in formats.FORMATS)}")


def _existing(path: Path, listed_in: Path) -> Path:
    if not path.is_file():
        raise ModelLoadError(f"{listed_in} lists {path.name}, but {path} is missing; re-create or redeploy it")
    return path


def _backend_installed(path: Path) -> bool:
    fmt = formats.format_of_path(path)
    return fmt is not None and formats.backend_installed(fmt)


def _with_version(source: ModelSource, version: str, kind: Optional[str] = None) -> ModelSource:
    return dataclasses.replace(source, version=version, kind=kind or source.kind)


def file_version(path: Path) -> str:
    """A model file's version when nothing names one: the first 12 hex digits of its sha256."""
    from edgeml_runtime.files import sha256_file

    return sha256_file(path)[:12]
