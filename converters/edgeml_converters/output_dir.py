"""The output directory: everything is built in a staging directory next to it and moved into place
only when the conversion has finished, so a failure leaves no partial file and an existing output intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from edgeml_runtime.formats import MANIFEST_FILE

from edgeml_converters.errors import OutputDirError

__all__ = ["default_output_dir", "publish", "remove_staging", "start_staging"]


def default_output_dir(source: Path) -> Path:
    """`<stem>-edgeml/` next to the input (`model.keras` -> `model-edgeml/`)."""
    stem = source.name if source.is_dir() else source.stem
    return source.resolve().parent / f"{stem}-edgeml"


def start_staging(output_dir: Path) -> Path:
    """Check `output_dir` can be written and create the staging directory beside it."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputDirError(f"output directory {output_dir} is an existing file; choose another -o")
    parent = _existing_parent(output_dir.parent)
    if not _writable(parent):
        raise OutputDirError(f"no write permission in {parent}; choose another output directory with -o")
    if output_dir.is_dir() and not _writable(output_dir):
        raise OutputDirError(f"no write permission in {output_dir}; choose another output directory with -o")
    try:
        output_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.staging-", dir=output_dir.parent))
    except OSError as error:
        raise OutputDirError(f"cannot create files next to {output_dir}: {error.strerror}; choose another -o") from None


def publish(staging: Path, output_dir: Path) -> None:
    """Move the staged files into `output_dir`, the manifest last; drop artifacts of an earlier run
    that this run did not produce (they are listed in the old manifest: each artifact's `path`, and its
    `files` for TFLM sources). Other files are left alone."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stale = _previous_artifacts(output_dir) - {p.name for p in staging.iterdir()}
    for item in sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST_FILE):
        target = output_dir / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
    for name in stale:
        (output_dir / name).unlink(missing_ok=True)
    remove_staging(staging)


def remove_staging(staging: Optional[Path]) -> None:
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)


def _previous_artifacts(output_dir: Path) -> set:
    try:
        manifest = json.loads((output_dir / MANIFEST_FILE).read_text())
        names = {Path(str(name)).name for entry in manifest.get("artifacts", [])
                 for name in [entry["path"], *(entry.get("files") or [])]}
        return names - {"", ".", ".."}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def _writable(folder: Path) -> bool:
    # effective ids: what the kernel will check when we create files (differs under setuid/seteuid)
    effective = os.access in os.supports_effective_ids
    return os.access(folder, os.W_OK | os.X_OK, effective_ids=effective)


def _existing_parent(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path("/")
