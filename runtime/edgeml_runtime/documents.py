"""Typed readers for the JSON documents edgeml writes: the conversion manifest (`manifest.json`,
edgeml.manifest/1) and the bundle manifest (`edgeml-bundle.json`, edgeml.bundle/1). labels.json has its
reader in `edgeml_runtime.metadata`. Every reader of these files goes through here, so a damaged or
foreign file is refused the same way everywhere, and paths inside them never leave their folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Tuple

from edgeml_runtime import formats
from edgeml_runtime.errors import ModelLoadError

__all__ = [
    "ArtifactEntry",
    "BundleManifest",
    "ConversionManifest",
    "DocumentError",
    "conversion_manifest_from_dict",
    "inside_path",
    "read_bundle_manifest",
    "read_conversion_manifest",
    "read_json_object",
    "schema_of",
]


class DocumentError(ModelLoadError):
    """A manifest is missing, not JSON, of another schema, or lists paths outside its folder."""


@dataclass(frozen=True)
class ArtifactEntry:
    """One artifact of a conversion manifest; `file` is `path` resolved against the manifest's folder."""

    path: str
    file: Path
    format: str
    quantization: str
    sha256: Optional[str]
    passed: bool
    entry: dict = field(repr=False)


@dataclass(frozen=True)
class ConversionManifest:
    """`recommended`: the artifact measured fastest within the accuracy budget (`edgeml_runtime.recommend`), with
    where and how it was measured; None in manifests written without a measurement (and older ones)."""

    path: Path
    artifacts: Tuple[ArtifactEntry, ...]
    metadata: Dict[str, str]
    data: dict = field(repr=False)
    recommended: Optional[dict] = None

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def passing(self) -> List[ArtifactEntry]:
        """Artifacts that passed their validation gate (an entry without validation counts as passed)."""
        return [artifact for artifact in self.artifacts if artifact.passed]

    @property
    def recommended_path(self) -> Optional[Path]:
        """The recommended artifact's file (inside the manifest's folder, one of `artifacts`), or None."""
        if self.recommended is None:
            return None
        return self.directory / self.recommended["path"]

    @property
    def labels_file(self) -> Path:
        """Where this manifest's labels.json is (it may not exist)."""
        return self.directory / self.metadata.get("labels", formats.LABELS_FILE)

    def metadata_files(self) -> List[Tuple[str, Path]]:
        """(relative name, path) of the files `metadata` names (labels.json), which travel with the models."""
        return [(name, self.directory / name) for name in self.metadata.values()]


@dataclass(frozen=True)
class BundleManifest:
    name: str
    version: str
    models: Tuple[dict, ...]
    files: Tuple[dict, ...]
    data: dict = field(repr=False)


def read_json_object(path: Path, what: str = "file") -> dict:
    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DocumentError(f"{what} not found: {path}") from None
    except (OSError, ValueError) as error:
        raise DocumentError(f"{path}: not readable JSON ({error}); re-create it with edgeml") from None
    if not isinstance(payload, dict):
        raise DocumentError(f"{path}: expected a JSON object")
    return payload


def schema_of(data: dict) -> str:
    return str(data.get("schema") or "")


def inside_path(value, listed_in: Path, what: str) -> str:
    """A relative POSIX path from a document, refused when absolute or climbing out with '..'."""
    relative = PurePosixPath(str(value or ""))
    if not relative.parts or relative.is_absolute() or ".." in relative.parts or "\\" in str(value):
        raise DocumentError(f"{listed_in}: {what} path '{value}' must be relative and inside the directory")
    return relative.as_posix()


def read_conversion_manifest(path) -> ConversionManifest:
    """Parse an `edgeml convert` manifest.json (or the directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / formats.MANIFEST_FILE
    return conversion_manifest_from_dict(read_json_object(path, "conversion manifest"), path)


def conversion_manifest_from_dict(data: dict, path: Path) -> ConversionManifest:
    """Check a conversion manifest's schema, artifacts and paths (`path`: where it is, or is to be, written)."""
    path = Path(path)
    if not schema_of(data).startswith(formats.MANIFEST_SCHEMA.split("/")[0] + "/"):
        raise DocumentError(f"{path}: not an edgeml conversion manifest (schema {schema_of(data)!r}, expected "
                            f"{formats.MANIFEST_SCHEMA}); re-run edgeml convert")
    entries = data.get("artifacts")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise DocumentError(f"{path}: no artifacts listed; re-run edgeml convert")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DocumentError(f"{path}: 'metadata' must be an object; re-run edgeml convert")
    artifacts = tuple(_artifact(entry, path) for entry in entries)
    return ConversionManifest(
        path=path,
        artifacts=artifacts,
        metadata={str(key): inside_path(value, path, "metadata") for key, value in metadata.items()},
        data=data,
        recommended=_recommended(data.get(formats.RECOMMENDED_KEY), artifacts, path),
    )


def _recommended(value, artifacts: Tuple[ArtifactEntry, ...], manifest_path: Path) -> Optional[dict]:
    """The `recommended` object, its path checked like an artifact's and required to be one of them: consumers load
    it by default, so a hand-edited entry must not lead them outside the listed, validated files."""
    if value is None:
        return None
    key = formats.RECOMMENDED_KEY
    if not isinstance(value, dict):
        raise DocumentError(f"{manifest_path}: '{key}' must be an object or null; re-run edgeml convert")
    relative = inside_path(value.get("path"), manifest_path, key)
    listed = next((artifact for artifact in artifacts if artifact.path == relative), None)
    if listed is None:
        raise DocumentError(f"{manifest_path}: '{key}' names {relative}, which is not one of the listed artifacts; "
                            "re-run edgeml select (or edgeml convert)")
    if not listed.passed:
        raise DocumentError(f"{manifest_path}: '{key}' names {relative}, which failed validation; re-run edgeml "
                            "select (or edgeml convert)")
    return {**value, "path": relative}


def _artifact(entry: dict, manifest_path: Path) -> ArtifactEntry:
    relative = inside_path(entry.get("path"), manifest_path, "artifact")
    validation = entry.get("validation") or {}
    return ArtifactEntry(
        path=relative,
        file=manifest_path.parent / relative,
        format=str(entry.get("format") or formats.format_of_path(relative) or ""),
        quantization=str(entry.get("quantization") or ""),
        sha256=entry.get("sha256"),
        passed=bool(validation.get("passed", True)),
        entry=entry,
    )


def read_bundle_manifest(path) -> BundleManifest:
    """Parse an unpacked bundle's edgeml-bundle.json (or the bundle directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / formats.BUNDLE_MANIFEST_FILE
    return bundle_manifest_from_dict(read_json_object(path, "bundle manifest"), path)


def bundle_manifest_from_dict(data: dict, source: Path) -> BundleManifest:
    """Check a bundle manifest's schema and the paths it lists (read from a file or from a tarball)."""
    if schema_of(data) != formats.BUNDLE_SCHEMA:
        raise DocumentError(f"{source}: unsupported bundle schema {schema_of(data)!r}; expected "
                            f"{formats.BUNDLE_SCHEMA}; rebuild it with edgeml bundle")
    models = data.get("models") or []
    files = data.get("files") or []
    if not isinstance(models, list) or not isinstance(files, list):
        raise DocumentError(f"{source}: 'models' and 'files' must be lists; rebuild it with edgeml bundle")
    for entry in [*models, *files]:
        if not isinstance(entry, dict):
            raise DocumentError(f"{source}: every model and file entry must be an object")
        inside_path(entry.get("path"), source, "file")
    return BundleManifest(name=str(data.get("name") or ""), version=str(data.get("version") or ""),
                          models=tuple(models), files=tuple(files), data=data)
