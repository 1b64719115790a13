"""Hostile .npy/.npz files, as a careless user or an attacker would hand them to `run --input`,
`convert --calibration` or `train`: built without ever allocating what they claim to hold.
Standard library and numpy only."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

GIB = 1 << 30


def npy_header(shape, dtype="<f4") -> bytes:
    """A version 1.0 .npy header for an array of `shape` and `dtype`, padded as numpy pads it."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {tuple(shape)}, }}"
    text += " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin-1")


def huge_header_npy(path: Path, shape=(100_000, 100_000, 2)) -> Path:
    """A 200-byte .npy whose header declares 74.5 GiB of float32."""
    path.write_bytes(npy_header(shape) + bytes(64))
    return path


def truncated_npy(path: Path) -> Path:
    path.write_bytes(npy_header((1000, 8)) + bytes(100))
    return path


def object_npy(path: Path) -> Path:
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return path


def object_npz(path: Path, names: Sequence[str] = ("x",)) -> Path:
    np.savez(path, **{name: np.array([[1, "a"]] * 3, dtype=object) for name in names})
    return path


def zip_bomb_npz(path: Path, names: Sequence[str] = ("x",), size: int = GIB) -> Path:
    """An .npz of about 1 MB whose first array expands to `size` bytes of zeros (float32); the others are
    small. The deflate stream of 1 MiB of zeros is made once and repeated (a full flush between pieces
    makes each piece independent), so nothing here compresses or holds a gigabyte."""
    members = []
    for index, name in enumerate(names):
        if index == 0:
            members.append((f"{name}.npy", *_zeros_deflated(npy_header((size // 4,)), size)))
        else:
            data = _small_npy()
            packer = zlib.compressobj(9, zlib.DEFLATED, -15)
            members.append((f"{name}.npy", packer.compress(data) + packer.flush(), zlib.crc32(data), len(data)))
    with open(path, "wb") as out:
        central = b""
        for name, compressed, crc, length in members:
            offset = out.tell()
            encoded = name.encode()
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(compressed), length,
                                  len(encoded), 0) + encoded + compressed)
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(compressed),
                                   length, len(encoded), 0, 0, 0, 0, 0, offset) + encoded
        start = out.tell()
        out.write(central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                                        start, 0))
    return path


def _zeros_deflated(header: bytes, size: int):
    """(raw deflate stream, crc32, length) of `header` followed by `size` zero bytes."""
    piece = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = packer.compress(header) + packer.flush(zlib.Z_FULL_FLUSH)
    repeated = packer.compress(piece) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(size // len(piece)):
        crc = zlib.crc32(piece, crc)
    return head + repeated * (size // len(piece)) + packer.flush(), crc, len(header) + size


def _small_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    return buffer.getvalue()


def not_an_array(path: Path) -> Path:
    path.write_bytes(b"name,value\nx,1\n")
    return path


def damaged_header_npy(path: Path) -> Path:
    path.write_bytes(b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f4', 'shape': (3,}   \n" + bytes(12))
    return path
