"""The output directory: everything is built in a staging directory next to it and moved into place
only when the conversion has finished, so a failure leaves no partial file and an existing output intact.

Temporary folders (the staging directory, the conversion process's scratch folder, the SavedModel
exported from a Keras model) hold a lock while their process lives: a file `.edgeml-owner` locked with
flock(2), which the kernel releases when the process ends, however it ends. A conversion that was killed
(kill -9, out of memory, a power cut) leaves them behind; the next conversion removes those whose lock is
free (`remove_leftovers`). Folders of an older edgeml without the file are removed once a day old.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from edgeml_runtime.formats import MANIFEST_FILE

from edgeml_converters.errors import OutputDirError

__all__ = [
    "SCRATCH_PREFIXES",
    "default_output_dir",
    "make_scratch_dir",
    "publish",
    "remove_leftovers",
    "remove_scratch_dir",
    "remove_staging",
    "start_staging",
]

OWNER_FILE = ".edgeml-owner"
# Folders edgeml makes in the system's temporary directory (tempfile.gettempdir()).
SCRATCH_PREFIXES = ("edgeml-convert-", "edgeml-export-", "edgeml-onnx-")
FRESH_SECONDS = 30.0  # younger folders are never removed: their owner may be taking its lock right now
OWNERLESS_SECONDS = 24 * 3600.0  # folders without an owner file (made by an older edgeml)
_held: Dict[str, int] = {}  # folder -> descriptor of its locked owner file, while this process uses it


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
        remove_leftovers(output_dir)
        return make_scratch_dir(f".{output_dir.name}.staging-", output_dir.parent)
    except OSError as error:
        raise OutputDirError(f"cannot create files next to {output_dir}: {error.strerror}; choose another -o") from None


def publish(staging: Path, output_dir: Path) -> None:
    """Move the staged files into `output_dir`, the manifest last; drop artifacts of an earlier run
    that this run did not produce (they are listed in the old manifest: each artifact's `path`, and its
    `files` for TFLM sources). Other files are left alone."""
    output_dir.mkdir(parents=True, exist_ok=True)
    staged = [item for item in staging.iterdir() if item.name != OWNER_FILE]  # the lock stays with the staging
    stale = _previous_artifacts(output_dir) - {item.name for item in staged}
    for item in sorted(staged, key=lambda p: p.name == MANIFEST_FILE):
        target = output_dir / item.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(item, target)
    for name in stale:
        (output_dir / name).unlink(missing_ok=True)
    remove_staging(staging)


def remove_staging(staging: Optional[Path]) -> None:
    if staging is not None:
        remove_scratch_dir(staging)


# --- temporary folders that a killed conversion leaves behind ----------------------------------------


def make_scratch_dir(prefix: str, parent: Optional[Path] = None) -> Path:
    """A new temporary folder (in `parent`, default the system's temporary directory) that holds this
    process's lock until `remove_scratch_dir` or the process's end."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    descriptor = os.open(folder / OWNER_FILE, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(descriptor, f"{os.getpid()}\n".encode())
    _lock(descriptor, wait=False)
    _held[str(folder)] = descriptor
    return folder


def remove_scratch_dir(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    descriptor = _held.pop(str(folder), None)
    if descriptor is not None:
        os.close(descriptor)  # after the removal: nobody may take the folder for a leftover meanwhile


def remove_leftovers(output_dir: Optional[Path] = None) -> List[Path]:
    """Remove what killed conversions left: scratch folders in the temporary directory and, with
    `output_dir`, staging folders beside it; only folders of this user whose owner is gone. Returns them."""
    places = [(Path(tempfile.gettempdir()), SCRATCH_PREFIXES)]
    if output_dir is not None:
        places.append((output_dir.parent, (f".{output_dir.name}.staging-",)))
    removed = []
    for parent, prefixes in places:
        try:
            entries = [entry for entry in os.scandir(parent) if entry.name.startswith(prefixes)]
        except OSError:
            continue
        for entry in entries:
            folder = Path(entry.path)
            if str(folder) not in _held and _abandoned(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def _abandoned(folder: Path) -> bool:
    """True for a real folder of this user (never a link: the temporary directory is shared) whose owner
    file is unlocked, or that has none (or no flock here) and is a day old."""
    try:
        info = folder.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    try:
        owner = (folder / OWNER_FILE).lstat()
    except FileNotFoundError:
        return time.time() - info.st_mtime > OWNERLESS_SECONDS
    except OSError:
        return False
    if not stat.S_ISREG(owner.st_mode) or time.time() - owner.st_mtime < FRESH_SECONDS:
        return False
    try:
        import fcntl  # noqa: F401 - only to know whether locks exist here
    except ImportError:
        return time.time() - info.st_mtime > OWNERLESS_SECONDS
    try:
        descriptor = os.open(folder / OWNER_FILE, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        return _lock(descriptor, wait=False)
    finally:
        os.close(descriptor)


def _lock(descriptor: int, *, wait: bool) -> bool:
    """Take an exclusive flock on `descriptor`; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (leftovers are then removed by age only)
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


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
