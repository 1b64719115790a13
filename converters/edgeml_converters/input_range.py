"""The range of values each model input expects, as a fact of the conversion.

Calibration measures every layer's value range on representative inputs, so inputs on the wrong scale (raw 0..255
pixels into a model that expects 0..1) give an int8 model that is silently wrong. The range comes, in this order,
from: `--input-range LO,HI` (`name=LO,HI` per input), what the trainer recorded in labels.json, what the model
states itself (a leading Rescaling layer), and last the calibration arrays themselves (they are the model's input,
so their min/max is the range). Image folders hold 0..255 pixels and are mapped into the declared range; with no
range known there is no way to map them, and that is an error naming `--input-range`.

Standard library and numpy only; the Keras model, when given, is only looked at.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from edgeml_runtime import InputError

__all__ = [
    "FLAG",
    "FROM_DATA",
    "FROM_FLAG",
    "FROM_LABELS",
    "FROM_MODEL",
    "PIXEL_RANGE",
    "InputRange",
    "declared_ranges",
    "hull",
    "map_pixels",
    "parse_input_ranges",
    "range_notice",
    "synthetic_in_range",
    "widely_outside",
]

FLAG = "--input-range"
FROM_FLAG = FLAG
FROM_LABELS = "labels.json"
FROM_MODEL = "the model's Rescaling layer"
FROM_DATA = "calibration data (min/max)"
PIXEL_RANGE = (0.0, 255.0)  # what an image folder's files hold
# Validation data whose range is this many times wider than the calibration data's: the int8 model clips them.
FAR_OUTSIDE_FACTOR = 4.0
# Calibration data that reach past the declared range by more than this share of its span get a warning.
OUTSIDE_TOLERANCE = 0.05

Requested = Tuple[Tuple[str, float, float], ...]  # (input name or "" for the only/every input, low, high)


@dataclass(frozen=True)
class InputRange:
    """[low, high] of one input's values, and where that fact came from."""

    low: float
    high: float
    origin: str

    @property
    def span(self) -> float:
        return self.high - self.low

    def to_dict(self) -> dict:
        return {"low": _number(self.low), "high": _number(self.high), "from": self.origin}

    def describe(self) -> str:
        return f"[{_number(self.low):g}, {_number(self.high):g}]"


def parse_input_ranges(values) -> Requested:
    """`--input-range` values as (name, low, high): "LO,HI" (name ""), "name=LO,HI", (low, high), (name, low, high),
    or a dict {name: (low, high)}; several may come as a list. Bad values are an InputError naming the flag."""
    if values is None:
        return ()
    if isinstance(values, Mapping):
        items: List = [(str(name), *_pair(value, name)) for name, value in values.items()]
    elif isinstance(values, str):
        items = [_parse_text(values)]
    else:
        values = list(values)
        if len(values) in (2, 3) and all(isinstance(v, (int, float)) for v in values[-2:]) and (
                len(values) == 2 or isinstance(values[0], str)):
            items = [_parse_tuple(values)]
        else:
            items = [_parse_text(v) if isinstance(v, str) else _parse_tuple(v) for v in values]
    names = [name for name, _, _ in items]
    repeated = sorted({name or "(unnamed)" for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(f"{FLAG} given twice for {', '.join(repeated)}; give one LO,HI per input")
    if "" in names and len(names) > 1:
        raise InputError(f"{FLAG}: with several ranges, name each input: {FLAG} name=LO,HI (repeatable)")
    return tuple(items)


def declared_ranges(requested: Requested, inputs: Sequence, *, labels: Optional[dict] = None,
                    model=None) -> Dict[str, InputRange]:
    """The range of each input (by name) that is known without looking at data: the flag's, else labels.json's,
    else the model's own Rescaling layer's. Inputs with none are left out."""
    names = [info.name for info in inputs]
    ranges: Dict[str, InputRange] = {}
    for name, low, high in requested:
        if not name:
            for each in names:  # one unnamed range: the only input's (or every input's)
                ranges[each] = InputRange(low, high, FROM_FLAG)
        elif name in names:
            ranges[name] = InputRange(low, high, FROM_FLAG)
        else:
            raise InputError(f"{FLAG} {name}=...: the model has no input '{name}'; its inputs are {names}")
    recorded = _labels_range(labels, names)
    stated = _rescaling_range(model, names)
    for name in names:
        if name not in ranges:
            found = recorded.get(name) or stated.get(name)
            if found is not None:
                ranges[name] = found
    return ranges


def map_pixels(array: np.ndarray, target: InputRange) -> Tuple[np.ndarray, str]:
    """Image-file pixels (0..255) mapped linearly onto `target`, and how (for the manifest)."""
    low, high = target.low, target.high
    pixels = np.asarray(array, dtype=np.float32)
    if (low, high) == PIXEL_RANGE:
        return pixels, "image pixels 0..255 as they are"
    if (low, high) == (0.0, 1.0):
        return pixels / np.float32(255.0), "image pixels / 255 (0..255 -> 0..1)"
    if (low, high) == (-1.0, 1.0):
        return pixels / np.float32(127.5) - np.float32(1.0), "image pixels / 127.5 - 1 (0..255 -> -1..1)"
    scale = (high - low) / 255.0
    mapped = (pixels * np.float32(scale) + np.float32(low)).astype(np.float32)
    return mapped, f"image pixels * {scale:.6g} + {low:g} (0..255 -> {low:g}..{high:g})"


def synthetic_in_range(inputs: Sequence, ranges: Mapping[str, InputRange], count: int, seed: int,
                       default=(0.0, 1.0)):
    """Random inputs drawn uniformly inside each input's range (`default` where none is known):
    (arrays by input name, a description)."""
    rng = np.random.default_rng(seed)
    arrays, parts = {}, []
    for info in inputs:
        known = ranges.get(info.name)
        low, high = (known.low, known.high) if known else default
        shape = (count,) + tuple(d or 1 for d in info.shape[1:])
        dtype = np.dtype(info.dtype)
        if dtype.kind in "iu":
            arrays[info.name] = rng.integers(math.ceil(low), math.floor(high) + 1, shape).astype(dtype)
        else:
            arrays[info.name] = rng.uniform(low, high, shape).astype(dtype)
        parts.append(f"[{low:g}, {high:g})")
    unique = sorted(set(parts))
    return arrays, f"synthetic uniform {unique[0] if len(unique) == 1 else ', '.join(parts)}"


def hull(arrays: Mapping[str, np.ndarray]) -> Dict[str, Tuple[float, float]]:
    """(min, max) of each input's values."""
    return {name: (float(np.min(array)), float(np.max(array))) for name, array in arrays.items() if np.size(array)}


def widely_outside(reference: Tuple[float, float], data: Tuple[float, float],
                   factor: float = FAR_OUTSIDE_FACTOR) -> bool:
    """Whether `data`'s values reach far outside `reference` (the range spanned by both is more than `factor` times
    `reference`'s span)."""
    span = reference[1] - reference[0]
    together = max(reference[1], data[1]) - min(reference[0], data[0])
    if span <= 0:
        return together > 0 and together > factor * max(abs(reference[0]), abs(reference[1]), 1e-12)
    return together > factor * span


def range_notice(name: str, declared: InputRange, data: Tuple[float, float], what: str) -> Optional[str]:
    """A warning when `what` data for input `name` lie outside its declared range by more than a few percent."""
    margin = OUTSIDE_TOLERANCE * max(declared.span, 1e-12)
    if data[0] >= declared.low - margin and data[1] <= declared.high + margin:
        return None
    return (f"{what} data for input '{name}' lie in [{data[0]:.4g}, {data[1]:.4g}], outside its input range "
            f"{declared.describe()} (from {declared.origin}); scale them like the model's real inputs, or give the "
            f"right range with {FLAG}")


# --- where a range can be read from ------------------------------------------------------------------------


def _labels_range(labels: Optional[dict], names: List[str]) -> Dict[str, InputRange]:
    """What `edgeml train` recorded: an image model's raw value range (`image.value_range`). (For a table it records
    the normalization it adapted, which says where most values lie, not their range: the calibration data it
    writes next to the model say that.)"""
    if not isinstance(labels, dict):
        return {}
    recorded = [entry.get("name") for entry in labels.get("inputs") or [] if isinstance(entry, dict)]
    targets = [name for name in names if name in recorded] or (names if len(names) == 1 else [])
    if not targets:
        return {}
    image = labels.get("image")
    if isinstance(image, dict) and _is_pair(image.get("value_range")):
        low, high = (float(v) for v in image["value_range"])
        if high > low:
            return {name: InputRange(low, high, f"{FROM_LABELS} (image value_range)") for name in targets}
    return {}


def _rescaling_range(model, names: List[str]) -> Dict[str, InputRange]:
    """A Keras model whose one input goes straight into Rescaling(scale, offset) says what it expects: raw values
    that the layer maps onto [0, 1] (offset 0, e.g. 1/255 -> 0..255) or [-1, 1] (offset -1, e.g. 1/127.5)."""
    if model is None or len(names) != 1:
        return {}
    try:
        import keras

        first = next(layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer))
        if not isinstance(first, keras.layers.Rescaling):
            return {}
        scale, offset = float(np.mean(first.scale)), float(np.mean(first.offset))
    except Exception:  # no layers (a subclassed model), per-channel scales of several values, no keras
        return {}
    if not scale > 0:
        return {}
    if abs(offset) < 1e-9:
        low, high = 0.0, 1.0 / scale
    elif abs(offset + 1.0) < 1e-9:
        low, high = 0.0, 2.0 / scale
    else:
        return {}
    return {names[0]: InputRange(round(low, 6), round(high, 6), FROM_MODEL)}


# --- parsing --------------------------------------------------------------------------------------------------


_TEXT = re.compile(r"^\s*(?:(?P<name>[^=,\s][^=,]*?)\s*=)?\s*(?P<low>[^,]+?)\s*,\s*(?P<high>[^,]+?)\s*$")


def _parse_text(text: str) -> Tuple[str, float, float]:
    match = _TEXT.match(str(text))
    if not match:
        raise InputError(f"{FLAG} {text!r}: expected LO,HI (e.g. 0,1 or -1,1 or 0,255), or name=LO,HI per input")
    return _checked((match.group("name") or "").strip(), match.group("low"), match.group("high"), text)


def _parse_tuple(value) -> Tuple[str, float, float]:
    value = list(value)
    if len(value) == 2:
        return _checked("", value[0], value[1], value)
    if len(value) == 3:
        return _checked(str(value[0] or ""), value[1], value[2], value)
    raise InputError(f"{FLAG} {value!r}: expected (low, high) or (name, low, high)")


def _pair(value, name) -> Tuple[float, float]:
    if isinstance(value, str):
        _, low, high = _parse_text(value)
        return low, high
    if not _is_pair(value):
        raise InputError(f"{FLAG} for '{name}': expected (low, high), got {value!r}")
    _, low, high = _checked(str(name), value[0], value[1], value)
    return low, high


def _checked(name: str, low, high, given) -> Tuple[str, float, float]:
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise InputError(f"{FLAG} {given!r}: LO and HI must be numbers (e.g. {FLAG} 0,1)") from None
    if not (math.isfinite(low) and math.isfinite(high)) or not low < high:
        raise InputError(f"{FLAG} {given!r}: needs finite LO < HI (e.g. {FLAG} 0,1)")
    return name, low, high


def _is_pair(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def _number(value: float):
    """An int where the value is whole (0, 255), so the manifest reads naturally."""
    return int(value) if float(value).is_integer() else float(value)

