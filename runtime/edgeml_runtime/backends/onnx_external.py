"""External data of ONNX models: tensors whose bytes live in files beside the .onnx file.

An ONNX tensor may say "my bytes are in `location`, at `offset`, `length` bytes long". ONNX Runtime
resolves `location` against the folder of the model file it was given, or against the current directory
when the model came as bytes, which is how the runtime loads models. A crafted model could therefore
read any file the process can read (its content then comes out of `run`, or over HTTP through `serve`),
and a legitimate model with `weights.bin` beside it would only load from its own folder.

Before ONNX Runtime sees such a model, every external reference is read from the model's protobuf (a tiny
wire-format reader: the runtime never imports the `onnx` package) and checked: `location` is a relative
path that stays inside the model's folder once symbolic links are resolved, names a regular file, and
the tensor's declared size (dims x element size) fits in that file at `offset` and equals `length` when
given. Only then is the model loaded, with its folder as the base of every location, so ONNX Runtime
reads exactly the declared bytes of files inside the model's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, Iterator, List, Optional, Tuple

from edgeml_runtime.errors import ModelLoadError

__all__ = ["ExternalTensor", "check_external_data", "external_tensors", "may_have_external_data"]

# Bytes per element of the ONNX TensorProto.DataType values a tensor of external data may have.
# 4-bit types pack two elements per byte (size 0.5); 2-bit types four.
ELEMENT_BYTES: Dict[int, float] = {
    1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
    17: 1, 18: 1, 19: 1, 20: 1, 21: 0.5, 22: 0.5, 23: 0.5, 24: 1, 25: 0.25, 26: 0.25,
}
MAX_NESTING = 64  # graphs inside node attributes inside graphs...; real models nest a few levels

# Which length-delimited fields of which message hold messages that may contain tensors
# (onnx/onnx.proto3 field numbers). Everything else is skipped by its length, unread.
_MODEL, _GRAPH, _NODE, _ATTRIBUTE, _SPARSE, _FUNCTION, _TRAINING, _TENSOR = range(8)
_CHILDREN = {
    _MODEL: {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},
    _FUNCTION: {7: _NODE},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _NODE: {5: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
}


@dataclass(frozen=True)
class ExternalTensor:
    name: str
    data_type: int
    dims: Tuple[int, ...]
    entries: Tuple[Tuple[str, str], ...]  # external_data key/value pairs, in file order

    def entry(self, key: str) -> Optional[str]:
        return next((value for name, value in self.entries if name == key), None)


def may_have_external_data(model_bytes: bytes) -> bool:
    """A cheap first look: every external reference carries the key 'location' as plain text."""
    return b"location" in model_bytes


def external_tensors(model_bytes: bytes) -> List[ExternalTensor]:
    """Every tensor of the model (initializers, sparse initializers, Constant attributes, subgraphs,
    functions, training graphs) that declares external data. ModelLoadError for a damaged protobuf."""
    found: List[ExternalTensor] = []
    try:
        _walk(memoryview(model_bytes), _MODEL, 0, found)
    except (IndexError, ValueError, UnicodeDecodeError) as error:
        raise ModelLoadError(f"not a valid ONNX model: the protobuf is damaged ({error})") from None
    return found


def check_external_data(model_bytes: bytes, folder: Path) -> int:
    """Check every external reference of the model against `folder` (the model file's real folder);
    returns how many there are. ModelLoadError names the tensor and what is wrong."""
    folder = Path(os.path.realpath(folder))
    tensors = external_tensors(model_bytes)
    for tensor in tensors:
        _check_one(tensor, folder)
    return len(tensors)


def _check_one(tensor: ExternalTensor, folder: Path) -> None:
    what = f"tensor '{tensor.name}' declares external data"
    location = tensor.entry("location")
    if not location:
        raise ModelLoadError(f"{what} without a 'location'; the model is damaged, re-export it")
    relative = PurePosixPath(location)
    if ("\\" in location or "\x00" in location or relative.is_absolute() or ".." in relative.parts
            or (len(location) > 1 and location[1] == ":")):
        raise ModelLoadError(f"{what} in '{location}', outside the model's folder; refused (external data must be "
                             "a relative path beside the model, e.g. 'weights.bin')")
    target = Path(os.path.realpath(folder / relative))
    if target != folder and folder not in target.parents:
        raise ModelLoadError(f"{what} in '{location}', which links outside the model's folder ({folder}); refused")
    if not target.is_file():
        raise ModelLoadError(f"{what} in '{location}', which is not a file in {folder}; copy it next to the model")
    declared = _declared_bytes(tensor, what)
    offset = _number(tensor.entry("offset"), "offset", what, default=0)
    length = _number(tensor.entry("length"), "length", what, default=None)
    if length is not None and length != declared:
        raise ModelLoadError(f"{what} of {length} bytes in '{location}', but its shape {list(tensor.dims)} holds "
                             f"{declared} bytes; the model is damaged or crafted, refused")
    size = target.stat().st_size
    if offset + declared > size:
        raise ModelLoadError(f"{what} at bytes {offset}..{offset + declared} of '{location}', which has only {size} "
                             "bytes; the weights file is truncated or belongs to another model")


def _declared_bytes(tensor: ExternalTensor, what: str) -> int:
    element = ELEMENT_BYTES.get(tensor.data_type)
    if element is None:
        raise ModelLoadError(f"{what} of data type {tensor.data_type}, which cannot be stored externally; refused")
    count = 1
    for dim in tensor.dims:
        if dim < 0:
            raise ModelLoadError(f"{what} with a negative dimension {list(tensor.dims)}; the model is damaged")
        count *= dim
    return -(-count * int(element * 4) // 4)  # whole bytes, rounding packed 4-bit/2-bit types up


def _number(text: Optional[str], key: str, what: str, *, default):
    if text is None:
        return default
    if not text.isdigit():
        raise ModelLoadError(f"{what} with {key} '{text[:40]}', not a whole number; the model is damaged")
    return int(text)


# --- protobuf wire format ------------------------------------------------------------------------------


def _varint(data: memoryview, position: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(data: memoryview) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value): an int for varints and fixed types, a memoryview for bytes."""
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 1:
            value, position = int.from_bytes(data[position:position + 8], "little"), position + 8
        elif wire == 2:
            length, position = _varint(data, position)
            if position + length > end:
                raise ValueError(f"field {number} runs past the end of its message")
            value, position = data[position:position + length], position + length
        elif wire == 5:
            value, position = int.from_bytes(data[position:position + 4], "little"), position + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if position > end:
            raise ValueError(f"field {number} runs past the end of its message")
        yield number, wire, value


def _walk(data: memoryview, kind: int, depth: int, found: List[ExternalTensor]) -> None:
    if depth > MAX_NESTING:
        raise ValueError(f"graphs nested more than {MAX_NESTING} levels deep")
    if kind == _TENSOR:
        tensor = _tensor(data)
        if tensor is not None:
            found.append(tensor)
        return
    children = _CHILDREN[kind]
    for number, wire, value in _fields(data):
        if wire == 2 and number in children:
            _walk(value, children[number], depth + 1, found)


def _tensor(data: memoryview) -> Optional[ExternalTensor]:
    """A TensorProto's external reference (dims 1, data_type 2, name 8, external_data 13, data_location 14)."""
    dims: List[int] = []
    data_type, name, external, location_flag = 0, "", [], 0
    for number, wire, value in _fields(data):
        if number == 1 and wire == 0:
            dims.append(_signed(value))
        elif number == 1 and wire == 2:  # packed dims
            position = 0
            while position < len(value):
                dim, position = _varint(value, position)
                dims.append(_signed(dim))
        elif number == 2 and wire == 0:
            data_type = value
        elif number == 8 and wire == 2:
            name = bytes(value).decode("utf-8", "replace")
        elif number == 13 and wire == 2:
            key = text = ""
            for entry_number, entry_wire, entry_value in _fields(value):
                if entry_wire == 2 and entry_number in (1, 2):
                    decoded = bytes(entry_value).decode("utf-8")
                    key, text = (decoded, text) if entry_number == 1 else (key, decoded)
            external.append((key, text))
        elif number == 14 and wire == 0:
            location_flag = value
    if not external and location_flag != 1:
        return None
    return ExternalTensor(name, data_type, tuple(dims), tuple(external))


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
