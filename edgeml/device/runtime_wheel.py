"""A wheel of the installed `edgeml_runtime`, packed from its files (works for editable and regular
installs alike, needs no build backend) with fixed timestamps, so the same runtime gives the same bytes.

The wheel's METADATA comes from the installed distribution: a `.dist-info` has METADATA; an `.egg-info`
(`setup.py develop`, an old editable install, or a source tree on PYTHONPATH after `egg_info`) has PKG-INFO
instead, with the requirements in requires.txt; and a bare one may have neither.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib import metadata
from pathlib import Path
from typing import List, Tuple

__all__ = ["build_runtime_wheel", "wheel_metadata"]

DISTRIBUTION = "edgeml-runtime"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the oldest date zip can store: fixed so the wheel is reproducible
WHEEL_FILE = "Wheel-Version: 1.0\nGenerator: edgeml\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def build_runtime_wheel(dest_dir: Path) -> Path:
    import edgeml_runtime

    dist = metadata.distribution(DISTRIBUTION)
    version = dist.version or edgeml_runtime.__version__  # a bare egg-info may have no metadata at all
    package_dir = Path(edgeml_runtime.__file__).parent
    dist_info = f"edgeml_runtime-{version}.dist-info"
    entries: List[Tuple[str, bytes]] = []
    for path in sorted(package_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            entries.append((f"edgeml_runtime/{path.relative_to(package_dir).as_posix()}", path.read_bytes()))
    entries.append((f"{dist_info}/METADATA", wheel_metadata(dist, version).encode()))
    entries.append((f"{dist_info}/WHEEL", WHEEL_FILE.encode()))
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        entries.append((f"{dist_info}/entry_points.txt", entry_points.encode()))
    entries.append((f"{dist_info}/top_level.txt", b"edgeml_runtime\n"))
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in entries]
    record.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))

    dest_dir.mkdir(parents=True, exist_ok=True)
    wheel = dest_dir / f"edgeml_runtime-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return wheel


def wheel_metadata(dist: metadata.Distribution, version: str) -> str:
    """The core metadata for the wheel: METADATA, else PKG-INFO, else the name and version alone; with
    `Requires-Dist` lines from the distribution's requirements (requires.txt) when the text has none, so
    that pip still installs numpy with the runtime."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    headers, blank, description = text.partition("\n\n")
    if not headers.strip():
        headers, blank, description = f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {version}", "", ""
    if "\nRequires-Dist:" not in f"\n{headers}" and dist.requires:
        headers += "".join(f"\nRequires-Dist: {requirement}" for requirement in dist.requires)
    return headers.rstrip("\n") + "\n" + (f"\n{description}" if blank else "")


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
