"""Offline bundles: the model(s), the runtime as a wheel, the device's wheels and an install script, in
one reproducible .tar.gz with a manifest of every file's size and sha256.

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
from edgeml_runtime.documents import DocumentError, bundle_manifest_from_dict, read_conversion_manifest
from edgeml_runtime.errors import EdgeMLError
from edgeml_runtime.files import sha256_file

from edgeml.device.profiles import DeviceProfile

__all__ = ["BundleError", "BundleResult", "build_bundle", "read_bundle_manifest", "read_bundle_signature",
           "sha256_file"]

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

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]




def build_bundle(source: Path, profile: DeviceProfile, output: Optional[Path], *, name: Optional[str] = None,
                 version: Optional[str] = None, python: Optional[str] = None, wheels: bool = True,
                 sign: Optional[Path] = None) -> BundleResult:
    """Build the bundle; with `sign` (an OpenSSH private key, or a .pub whose key is in ssh-agent), put an
    `ssh-keygen -Y sign` signature of the manifest right after it (see edgeml.device.signing)."""
    source = Path(source)
    models, skipped = collect_models(source, profile)
    model_hashes = {arcname: sha256_file(path) for arcname, path in models}
    name = _checked("name", name or _default_name(source))
    version = _checked("version", version or _default_version(model_hashes))
    python = python or profile.python
    if not re.fullmatch(r"3\.\d+", python):
        raise BundleError(f"--python must be a version like 3.11, not '{python}'")
    backends = needed_backends(models, profile)
    created = _created_epoch([path for _, path in models])
    output = Path(output) if output else Path(f"{name}-{version}-{profile.name}.tar.gz")

    with tempfile.TemporaryDirectory(prefix="edgeml-bundle-") as tmp:
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
    return BundleResult(Path(output), sha256_file(output), manifest, skipped, signer)


def collect_models(source: Path, profile: DeviceProfile) -> Tuple[List[Tuple[str, Path]], List[str]]:
    """(name in the bundle, local path) for the model file, or a conversion manifest and its artifacts
    that the device can run; plus the artifacts skipped because no backend of the device runs them."""
    if source.is_dir():
        source = source / formats.MANIFEST_FILE
        if not source.is_file():
            raise BundleError(f"{source.parent} has no {formats.MANIFEST_FILE}; pass a .tflite/.onnx file or an "
                              "`edgeml convert` output directory")
    if not source.exists():
        raise BundleError(f"model not found: {source}")
    if formats.format_of_path(source):
        if not needed_backends([("", source)], profile, strict=False):
            raise BundleError(f"{profile.name} has no backend for {source.suffix} models (its backends: "
                              f"{', '.join(profile.backends)}); see `edgeml devices show {profile.name}`")
        return [(f"models/{source.name}", source)], []
    if source.suffix.lower() == ".json":
        return _collect_from_manifest(source, profile)
    raise BundleError(f"{source}: not a model ({', '.join(formats.MODEL_SUFFIXES)}) or conversion "
                      f"{formats.MANIFEST_FILE}")


def _collect_from_manifest(path: Path, profile: DeviceProfile):
    try:
        manifest = read_conversion_manifest(path)
    except DocumentError as error:
        raise BundleError(str(error)) from None
    models, skipped = [(f"models/{formats.MANIFEST_FILE}", path)], []
    for artifact in manifest.artifacts:
        if artifact.format in formats.SOURCE_TARGETS:  # TFLM sources: for a microcontroller's firmware, not a bundle
            continue
        if not artifact.file.is_file():
            raise BundleError(f"{path}: artifact {artifact.path} is missing; re-run edgeml convert")
        if artifact.sha256 and sha256_file(artifact.file) != artifact.sha256:
            raise BundleError(f"{artifact.file}: sha256 differs from {path.name}; the file changed after "
                              "conversion, re-run edgeml convert")
        if needed_backends([("", artifact.file)], profile, strict=False):
            models.append((f"models/{artifact.path}", artifact.file))
        else:
            skipped.append(artifact.path)
    if len(models) == 1:
        raise BundleError(f"{path}: none of its artifacts runs on {profile.name} (backends: "
                          f"{', '.join(profile.backends)})")
    for relative, file in manifest.metadata_files():  # labels.json: the on-device Predictor needs it
        if not file.is_file():
            raise BundleError(f"{path}: metadata file {relative} is missing; re-run edgeml convert")
        models.append((f"models/{relative}", file))
    return models, skipped


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
