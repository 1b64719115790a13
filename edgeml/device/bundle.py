"""Offline bundles: the model(s), the runtime as a wheel, the device's wheels and an install script, in
one reproducible .tar.gz with a manifest of every file's size and sha256.

From a conversion manifest a bundle holds ONE model: the asked-for artifact, else the manifest's measured
recommendation when the device has a backend for it, else the first passing artifact the device runs (with a
note saying why); plus the manifest restricted to that artifact, its labels.json, and only the wheels of
the backend that model needs. `everything=True` (`edgeml bundle --all`) keeps every artifact the device
runs, and the wheels of every backend they need.

Reproducible: members are sorted (the manifest first), owned by 0:0, ustar format (no pax time
headers), and every mtime and the gzip header time are fixed. `created` (also every member's mtime) is
$SOURCE_DATE_EPOCH when set, else the newest model file's mtime, so the same inputs give the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata, resources
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from edgeml_runtime import formats
from edgeml_runtime.documents import (
    ArtifactEntry,
    ConversionManifest,
    DocumentError,
    bundle_manifest_from_dict,
    read_conversion_manifest,
)
from edgeml_runtime.errors import EdgeMLError
from edgeml_runtime.files import sha256_file
from edgeml_runtime.locate import default_artifact, recommended_artifact

from edgeml.device.profiles import DeviceProfile

__all__ = ["BundleError", "BundleResult", "Collected", "build_bundle", "collect_models", "read_bundle_manifest",
           "read_bundle_signature", "sha256_file"]

# The rule for bundle names and versions (they become folder names on the device). The on-device agent
# keeps a copy (it cannot import edgeml) and applies it again; tests/devices/test_agent_constants.py
# checks that the two agree.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
MAX_NAME_LENGTH = 64


class BundleError(EdgeMLError):
    """The bundle cannot be built or read: bad model input, bad name/version, or a damaged bundle."""


@dataclass
class BundleResult:
    path: Path
    sha256: str
    manifest: dict
    skipped: List[str] = field(default_factory=list)
    signed_by: Optional[str] = None  # the signing key's SHA256 fingerprint
    notes: List[str] = field(default_factory=list)  # why the model is not the recommended one, and the like
    chosen: Optional[dict] = None  # the one artifact taken from a conversion manifest (None: a model file, or --all)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]


@dataclass
class Collected:
    """What a bundle takes from its source: (name in the bundle, local file) pairs, and for a conversion
    manifest reduced to one artifact, the manifest's new content (`manifest_text`, written at build time)."""

    models: List[Tuple[str, Path]]
    skipped: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    manifest_text: Optional[bytes] = None
    chosen: Optional[dict] = None

    def sources(self) -> List[Path]:
        """The user's files the bundle is made from (their newest mtime dates it)."""
        return [path for _, path in self.models]

    def materialize(self, folder: Path) -> List[Tuple[str, Path]]:
        """The models, with the restricted manifest written into `folder` in place of the original."""
        if self.manifest_text is None:
            return list(self.models)
        restricted = folder / formats.MANIFEST_FILE
        restricted.write_bytes(self.manifest_text)
        manifest_name = f"models/{formats.MANIFEST_FILE}"
        return [(arcname, restricted if arcname == manifest_name else path) for arcname, path in self.models]


def build_bundle(source: Path, profile: DeviceProfile, output: Optional[Path], *, name: Optional[str] = None,
                 version: Optional[str] = None, python: Optional[str] = None, wheels: bool = True,
                 sign: Optional[Path] = None, artifact: Optional[str] = None,
                 everything: bool = False) -> BundleResult:
    """Build the bundle; with `sign` (an OpenSSH private key, or a .pub whose key is in ssh-agent), put an
    `ssh-keygen -Y sign` signature of the manifest right after it (see edgeml.device.signing). From a
    conversion manifest: the one `artifact` asked for, else the recommended one (see the module's doc);
    `everything`: every artifact the device runs."""
    source = Path(source)
    collected = collect_models(source, profile, artifact=artifact, everything=everything)
    python = python or profile.python
    if not re.fullmatch(r"3\.\d+", python):
        raise BundleError(f"--python must be a version like 3.11, not '{python}'")
    created = _created_epoch(collected.sources())

    with tempfile.TemporaryDirectory(prefix="edgeml-bundle-") as tmp:
        models = collected.materialize(Path(tmp))
        model_hashes = {arcname: sha256_file(path) for arcname, path in models}
        name = _checked("name", name or _default_name(source))
        version = _checked("version", version or _default_version(model_hashes))
        backends = needed_backends(models, profile)
        output = Path(output) if output else Path(f"{name}-{version}-{profile.name}.tar.gz")
        files = _payload(Path(tmp), models, profile, backends, python, wheels)
        manifest = {
            "schema": formats.BUNDLE_SCHEMA, "name": name, "version": version,
            "created": datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "device": {k: v for k, v in profile.to_dict().items() if k not in ("notes", "emulation")},
            "python": python, "backends": backends, "offline": wheels,
            "models": [{"path": arcname, "format": formats.format_of_path(arcname), "sha256": model_hashes[arcname]}
                       for arcname, _ in models if formats.format_of_path(arcname)],
            "edgeml": metadata.version("edgeml"), "edgeml_runtime": metadata.version("edgeml-runtime"),
            "files": [{"path": _checked_path(arcname), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
                      for arcname, path in files],
        }
        manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        signature = signer = None
        if sign is not None:
            from edgeml.device import signing

            signature = signing.sign(manifest_bytes, Path(sign))
            signer = signing.signer(signature)
        _write_tarball(output, f"{name}-{version}", manifest_bytes, files, created, signature)
    return BundleResult(Path(output), sha256_file(output), manifest, collected.skipped, signer, collected.notes,
                        collected.chosen)


def collect_models(source: Path, profile: DeviceProfile, *, artifact: Optional[str] = None,
                   everything: bool = False) -> Collected:
    """The model file; or a conversion manifest with the one artifact to ship (`artifact`, else the
    recommended one, see the module's doc), or with `everything` the artifacts the device can run (those
    no backend of the device runs are listed as skipped)."""
    if source.is_dir():
        source = source / formats.MANIFEST_FILE
        if not source.is_file():
            raise BundleError(f"{source.parent} has no {formats.MANIFEST_FILE}; pass a .tflite/.onnx file or an "
                              "`edgeml convert` output directory")
    if not source.exists():
        raise BundleError(f"model not found: {source}")
    if formats.format_of_path(source):
        if artifact:
            raise BundleError(f"--artifact picks one of a conversion manifest's artifacts; {source.name} is a model "
                              "file: pass the conversion directory, or drop --artifact")
        if not needed_backends([("", source)], profile, strict=False):
            raise BundleError(f"{profile.name} has no backend for {source.suffix} models (its backends: "
                              f"{', '.join(profile.backends)}); see `edgeml devices show {profile.name}`")
        return Collected([(f"models/{source.name}", source)])
    if source.suffix.lower() == ".json":
        if everything:
            return _collect_everything(source, profile)
        return _collect_one(source, profile, artifact)
    raise BundleError(f"{source}: not a model ({', '.join(formats.MODEL_SUFFIXES)}) or conversion "
                      f"{formats.MANIFEST_FILE}")


def _read_manifest(path: Path) -> ConversionManifest:
    try:
        return read_conversion_manifest(path)
    except DocumentError as error:
        raise BundleError(str(error)) from None


def _collect_everything(path: Path, profile: DeviceProfile) -> Collected:
    """`--all`: the manifest as it is and every artifact the device can run."""
    manifest = _read_manifest(path)
    models, skipped = [(f"models/{formats.MANIFEST_FILE}", path)], []
    for artifact in manifest.artifacts:
        if artifact.format in formats.SOURCE_TARGETS:  # TFLM sources: for a microcontroller's firmware, not a bundle
            continue
        _check_unchanged(artifact, path)
        if needed_backends([("", artifact.file)], profile, strict=False):
            models.append((f"models/{artifact.path}", artifact.file))
        else:
            skipped.append(artifact.path)
    if len(models) == 1:
        raise BundleError(f"{path}: none of its artifacts runs on {profile.name} (backends: "
                          f"{', '.join(profile.backends)})")
    return Collected(models + _metadata_files(manifest), skipped)


def _collect_one(path: Path, profile: DeviceProfile, wanted: Optional[str]) -> Collected:
    """One artifact (asked for, else the recommended one) and the manifest restricted to it."""
    manifest = _read_manifest(path)
    notes: List[str] = []
    if wanted:
        artifact = _asked_for(manifest, wanted, profile)
    else:
        choice = default_artifact(manifest, lambda entry: _why_not_on(entry, profile))
        if choice is None:
            raise BundleError(f"{path}: none of its passing artifacts runs on {profile.name} (backends: "
                              f"{', '.join(profile.backends)}); convert to a format it runs, or pick a device "
                              "with `edgeml devices`")
        artifact = choice.artifact
        notes += [choice.note] if choice.note else []
        if choice.recommended:
            notes += _measured_elsewhere(manifest, profile)
    _check_unchanged(artifact, path)
    recommended = artifact == recommended_artifact(manifest)
    models = [(f"models/{formats.MANIFEST_FILE}", path), (f"models/{artifact.path}", artifact.file)]
    chosen = {"path": artifact.path, "format": artifact.format, "quantization": artifact.quantization,
              "bytes": artifact.file.stat().st_size, "recommended": recommended,
              "p50_ms": manifest.recommended.get("p50_ms") if recommended else None,
              "measured_on": manifest.recommended.get("measured_on") if recommended else None}
    return Collected(models + _metadata_files(manifest), [], notes, _restricted(manifest, artifact), chosen)


def _asked_for(manifest: ConversionManifest, wanted: str, profile: DeviceProfile) -> ArtifactEntry:
    """--artifact: by path, file name, quantization or format (as the runtime's --artifact)."""
    models = [a for a in manifest.artifacts if formats.format_of_path(a.file)]
    matches = [a for a in models if wanted in (a.path, a.file.name, a.quantization, a.format)]
    if not matches:
        names = ", ".join(a.path for a in models) or "none"
        raise BundleError(f"{manifest.path}: no artifact matches --artifact '{wanted}' (artifacts: {names})")
    passing = [a for a in matches if a.passed]
    if not passing:
        raise BundleError(f"{manifest.path}: {matches[0].path} failed its conversion check; pick another --artifact")
    artifact = passing[0]
    problem = _why_not_on(artifact, profile)
    if problem:
        raise BundleError(f"{manifest.path}: {artifact.path} {problem}; pick another --artifact")
    return artifact


def _why_not_on(artifact: ArtifactEntry, profile: DeviceProfile) -> Optional[str]:
    if needed_backends([("", artifact.file)], profile, strict=False):
        return None
    return f"has no backend on {profile.name} (its backends: {', '.join(profile.backends)})"


def _measured_elsewhere(manifest: ConversionManifest, profile: DeviceProfile) -> List[str]:
    """A note when the recommendation was measured on another kind of machine than the device."""
    measured_on = manifest.recommended.get("measured_on") or {}
    if not isinstance(measured_on, dict) or measured_on.get("arch") == profile.arch:
        return []
    where = measured_on.get("host") or measured_on.get("kind") or "another machine"
    emulated = f" (or --emulated {profile.name})" if profile.emulation else ""
    return [f"the recommendation was measured on {where} ({measured_on.get('arch', 'unknown arch')}), not on a "
            f"{profile.name} ({profile.arch}); to measure on the device: edgeml select {manifest.directory} "
            f"--host USER@HOST{emulated}"]


def _restricted(manifest: ConversionManifest, artifact: ArtifactEntry) -> bytes:
    """The manifest listing only `artifact`; its recommendation kept only when it names that artifact (the
    device's reader refuses a recommendation naming an artifact the manifest does not list)."""
    data = {key: value for key, value in manifest.data.items() if key != formats.RECOMMENDED_KEY}
    data["artifacts"] = [artifact.entry]
    if manifest.recommended is not None and manifest.recommended["path"] == artifact.path:
        data[formats.RECOMMENDED_KEY] = manifest.data[formats.RECOMMENDED_KEY]
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


def _check_unchanged(artifact: ArtifactEntry, path: Path) -> None:
    if not artifact.file.is_file():
        raise BundleError(f"{path}: artifact {artifact.path} is missing; re-run edgeml convert")
    if artifact.sha256 and sha256_file(artifact.file) != artifact.sha256:
        raise BundleError(f"{artifact.file}: sha256 differs from {path.name}; the file changed after "
                          "conversion, re-run edgeml convert")


def _metadata_files(manifest: ConversionManifest) -> List[Tuple[str, Path]]:
    """labels.json and the like: the on-device Predictor needs them."""
    files = []
    for relative, file in manifest.metadata_files():
        if not file.is_file():
            raise BundleError(f"{manifest.path}: metadata file {relative} is missing; re-run edgeml convert")
        files.append((f"models/{relative}", file))
    return files


def needed_backends(models, profile: DeviceProfile, strict: bool = True) -> List[str]:
    """The device's preferred backend for each model format in the bundle."""
    chosen = []
    for _, path in models:
        fmt = formats.format_of_path(path)
        if fmt is None:
            continue
        usable = [b for b in profile.backends if b in formats.backends_for(fmt)]
        if not usable:
            if strict:
                raise BundleError(f"{profile.name} has no backend for {fmt} models")
            return []
        if usable[0] not in chosen:
            chosen.append(usable[0])
    return chosen


def _payload(tmp: Path, models, profile, backends, python, wheels) -> List[Tuple[str, Path]]:
    """Write the runtime wheel, dependency wheels, requirements.txt and install.sh; list every file."""
    from edgeml.device.runtime_wheel import build_runtime_wheel
    from edgeml.device.wheels import download_wheels

    build_runtime_wheel(tmp / "wheels")
    packages = [formats.BACKENDS[b].distribution for b in backends] + list(profile.pins)
    requirements = [f"edgeml-runtime=={metadata.version('edgeml-runtime')}", *packages]
    if wheels:
        runtime_deps = [r for r in metadata.requires("edgeml-runtime") or [] if "extra ==" not in r]
        download_wheels([*runtime_deps, *packages, "pip"], profile.platforms, python, tmp / "wheels")
    (tmp / "requirements.txt").write_text("\n".join(requirements) + "\n")
    install_script = resources.files("edgeml").joinpath("templates/install.sh").read_bytes()
    (tmp / "install.sh").write_bytes(install_script)

    files = list(models)
    files += [(f"wheels/{w.name}", w) for w in sorted((tmp / "wheels").glob("*.whl"))]
    files += [("requirements.txt", tmp / "requirements.txt"), ("install.sh", tmp / "install.sh")]
    return sorted(files)


def _write_tarball(output: Path, top: str, manifest_bytes: bytes, files, created: int,
                   signature: Optional[bytes] = None) -> None:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial-{os.getpid()}")
    try:
        with open(partial, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped, \
                tarfile.open(fileobj=zipped, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            manifest_member = _member(f"{top}/{formats.BUNDLE_MANIFEST_FILE}", len(manifest_bytes), created)
            tar.addfile(manifest_member, io.BytesIO(manifest_bytes))
            if signature is not None:
                tar.addfile(_member(f"{top}/{formats.BUNDLE_SIGNATURE_FILE}", len(signature), created),
                            io.BytesIO(signature))
            for arcname, path in files:
                mode = 0o755 if arcname.endswith(".sh") else 0o644
                with open(path, "rb") as handle:
                    tar.addfile(_member(f"{top}/{arcname}", path.stat().st_size, created, mode), handle)
        os.replace(partial, output)
    finally:
        if partial.exists():
            partial.unlink()


def _member(name: str, size: int, mtime: int, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def read_bundle_manifest(path: Path) -> Tuple[dict, str]:
    """The manifest of a bundle file and the bundle's top-level directory."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"bundle not found: {path}; build one with `edgeml bundle MODEL --device NAME`")
    try:
        with tarfile.open(path, "r:gz") as tar:
            first = tar.next()
            if first is None or not first.name.endswith("/" + formats.BUNDLE_MANIFEST_FILE) or not first.isfile():
                raise BundleError(f"{path}: not an edgeml bundle (no {formats.BUNDLE_MANIFEST_FILE} first)")
            manifest = json.loads(tar.extractfile(first).read())
    except (tarfile.TarError, OSError, ValueError, EOFError) as error:
        raise BundleError(f"{path}: not a readable edgeml bundle ({error}); rebuild it with edgeml bundle") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: not an edgeml bundle (its manifest is not a JSON object)")
    try:
        bundle_manifest_from_dict(manifest, path)
    except DocumentError as error:
        raise BundleError(str(error)) from None
    _check_names(manifest, path)
    return manifest, first.name.split("/", 1)[0]


def read_bundle_signature(path: Path) -> Optional[bytes]:
    """The signature member of a bundle (right after the manifest), or None when it is not signed."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            first, second = tar.next(), tar.next()
            if first is None or second is None or not second.isfile():
                return None
            if second.name != f"{first.name.split('/', 1)[0]}/{formats.BUNDLE_SIGNATURE_FILE}":
                return None
            return tar.extractfile(second).read(64 << 10)
    except (tarfile.TarError, OSError, ValueError, EOFError) as error:
        raise BundleError(f"{path}: not a readable edgeml bundle ({error}); rebuild it with edgeml bundle") from None


def _check_names(manifest: dict, path: Path) -> None:
    """The names the device turns into paths, checked with the build-time rules before anything is sent."""
    from edgeml.device import agent

    hint = "; it was not made by edgeml bundle, or was changed after: rebuild it"
    for what in ("name", "version"):
        value = manifest.get(what)
        _checked(what, value if isinstance(value, str) else "", hint)
    for entry in [*manifest.get("files", []), *manifest.get("models", [])]:
        problem = agent.path_problem(entry.get("path"))
        if problem:
            raise BundleError(f"{path}: refusing the bundle: its file path {json.dumps(entry.get('path'))} "
                              f"{problem}{hint}")


def _default_name(source: Path) -> str:
    stem = source.parent.name if source.name == formats.MANIFEST_FILE else source.stem
    stem = source.name if source.is_dir() else stem
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", stem).strip("-.") or "model"


def _default_version(model_hashes: Dict[str, str]) -> str:
    digest = hashlib.sha256()
    for arcname in sorted(model_hashes):
        digest.update(f"{arcname} {model_hashes[arcname]}\n".encode())
    return digest.hexdigest()[:12]


def _checked(what: str, value: str, hint: Optional[str] = None) -> str:
    if not SAFE_NAME.fullmatch(value) or len(value) > MAX_NAME_LENGTH:
        raise BundleError(f"bundle {what} '{value}' may only hold letters, digits, '.', '_', '+' and '-' "
                          f"(at most {MAX_NAME_LENGTH}, not starting with '.' or '-')" + (hint or f"; pass --{what}"))
    return value


def _checked_path(arcname: str) -> str:
    """A file's path in the bundle, checked with the rule the device applies (the agent's own function)."""
    from edgeml.device import agent

    problem = agent.path_problem(arcname)
    if problem:
        raise BundleError(f"cannot bundle {json.dumps(arcname)}: the path {problem}; rename the file")
    return arcname


def _created_epoch(paths: List[Path]) -> int:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        if not epoch.isdigit():
            raise BundleError(f"SOURCE_DATE_EPOCH must be seconds since 1970, not '{epoch}'")
        return int(epoch)
    return int(max(path.stat().st_mtime for path in paths))
