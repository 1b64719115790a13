"""Reading .npy and .npz files someone else made, without trusting them.

`numpy.load` believes a file's header: a few bytes declaring a shape of 10^12 elements make it allocate
that much (or fail with MemoryError), an .npz of 1 MB may expand to gigabytes, and an array of Python
objects needs unpickling. Here every array's header is read first and checked, before anything is
allocated: numbers only (no objects), no more bytes than the file really holds, and no more than a stated
limit in all (`MAX_ARRAY_BYTES`, or the environment variable EDGEML_MAX_ARRAY_BYTES). Every problem is one
`InputError` that names the file, the array and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np

from edgeml_runtime.errors import InputError

__all__ = ["MAX_ARRAY_BYTES", "array_bytes_limit", "describe_bytes", "read_array_file"]

MAX_ARRAY_BYTES = 512 << 20  # 512 MiB: a few hundred calibration images, far beyond any sensor batch
LIMIT_VARIABLE = "EDGEML_MAX_ARRAY_BYTES"
MAX_NPZ_MEMBERS = 1024
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"  # a member's local header (PK 3 4), or the end record of an empty archive (PK 5 6)


def array_bytes_limit() -> int:
    """The most bytes the arrays of one file may hold: EDGEML_MAX_ARRAY_BYTES when set, else MAX_ARRAY_BYTES."""
    text = os.environ.get(LIMIT_VARIABLE, "").strip()
    if not text:
        return MAX_ARRAY_BYTES
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"{LIMIT_VARIABLE}={text!r}: expected a number of bytes, e.g. {MAX_ARRAY_BYTES}")
    return int(text)


def describe_bytes(count: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def read_array_file(path: Union[str, os.PathLike], *, max_bytes: int = 0
                    ) -> Union[np.ndarray, Dict[str, np.ndarray]]:
    """A .npy file's array, or an .npz file's arrays by name, checked before they are allocated."""
    path = Path(path)
    limit = max_bytes or array_bytes_limit()
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(len(NPY_MAGIC))
    except OSError as error:
        raise InputError(f"{path}: cannot read it ({error.strerror or error})") from None
    if size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes), not a .npy/.npz array file")
    if head.startswith(NPY_MAGIC):
        return _read_npy(path, size, limit)
    if head.startswith(ZIP_MAGIC):
        return _read_npz(path, limit)
    raise InputError(f"{path}: not a .npy or .npz file (it starts with {head[:6]!r}); save arrays with "
                     "numpy.save / numpy.savez")


def _read_npy(path: Path, size: int, limit: int) -> np.ndarray:
    with open(path, "rb") as handle:
        shape, dtype, header_bytes = _header(handle, path, "the array")
    _check(path, "the array", shape, dtype, size - header_bytes, limit)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"{path}: not a readable .npy file ({error})") from None


def _read_npz(path: Path, limit: int) -> Dict[str, np.ndarray]:
    import zipfile  # here: `bench` start-up (synthetic inputs, the limit) does not need it

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_NPZ_MEMBERS:
                raise InputError(f"{path}: {len(members)} members; an .npz of inputs holds a few arrays")
            if not members:
                raise InputError(f"{path}: the .npz holds no arrays; save them with numpy.savez(path, name=array)")
            declared = sum(member.file_size for member in members)
            if declared > limit:
                compressed = sum(member.compress_size for member in members)
                raise InputError(f"{path}: its arrays expand to {describe_bytes(declared)} (from "
                                 f"{describe_bytes(compressed)} compressed), beyond the limit of "
                                 f"{describe_bytes(limit)} ({LIMIT_VARIABLE}); use fewer samples")
            for member in members:
                name = member.filename
                if not name.endswith(".npy"):
                    raise InputError(f"{path}: holds {name!r}, which is not an array (.npy); save the file with "
                                     "numpy.savez")
                label = f"array '{name[:-4]}'"
                with archive.open(member) as stream:
                    shape, dtype, header_bytes = _header(stream, path, label)
                _check(path, label, shape, dtype, member.file_size - header_bytes, limit)
    except InputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, ValueError) as error:
        raise InputError(f"{path}: not a readable .npz file ({error})") from None
    try:
        with np.load(path, allow_pickle=False) as loaded:
            return {key: loaded[key] for key in loaded.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise InputError(f"{path}: not a readable .npz file ({error})") from None


def _header(stream, path: Path, label: str) -> Tuple[Tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header size in bytes) of the .npy data at the start of `stream`."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = npy.read_array_header_2_0(stream)
        elif version == (3, 0) and hasattr(npy, "_read_array_header"):
            shape, _, dtype = npy._read_array_header(stream, version)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        consumed = stream.tell()
    except Exception as error:  # noqa: BLE001 - numpy parses the header as Python literals: any error is damage
        raise InputError(f"{path}: {label} has a damaged .npy header ({str(error)[:200]})") from None
    return tuple(shape), dtype, consumed


def _check(path: Path, label: str, shape, dtype: np.dtype, available: int, limit: int) -> int:
    """The array's size in bytes, once its dtype, its size and the bytes behind its header are checked."""
    if dtype.hasobject:
        raise InputError(f"{path}: {label} holds Python objects (dtype {dtype}), which would need unpickling; "
                         "save numeric arrays (float or integer)")
    count = 1
    for dim in shape:
        count *= int(dim)
    needed = count * dtype.itemsize
    if needed > limit:
        raise InputError(f"{path}: {label} declares shape {tuple(shape)} of {dtype} ({describe_bytes(needed)}), "
                         f"beyond the limit of {describe_bytes(limit)} ({LIMIT_VARIABLE}); use a smaller file")
    if needed > available:
        raise InputError(f"{path}: {label} declares shape {tuple(shape)} of {dtype} ({needed} bytes), but the file "
                         f"holds only {max(available, 0)} bytes of it; the file is truncated or damaged")
    return needed
