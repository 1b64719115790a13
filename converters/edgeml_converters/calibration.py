"""Calibration and validation data: reading it, checking it, and choosing samples from it.

Bad samples are rejected here, before a converter sees them: the TFLite converter is known to crash
(not raise) on NaN/Inf calibration samples, and a wrong shape gives an unreadable MLIR error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from edgeml_converters.errors import CalibrationError
from edgeml_converters.loading import TensorInfo

__all__ = [
    "Dataset", "auto_calibration_file", "evenly", "load_data", "split_for_validation", "split_indices", "synthetic",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
LABEL_COLUMNS = ("label", "labels", "target", "class", "y")
# Random inputs are drawn from this range: edgeml models carry their scaling inside (Rescaling or
# Normalization layers), so raw-looking values in [0, 1] exercise every layer without overflowing.
SYNTHETIC_RANGE = (0.0, 1.0)
SYNTHETIC_SAMPLES = 64


@dataclass
class Dataset:
    """Samples for every model input, by input name; the first axis counts samples."""

    arrays: Dict[str, np.ndarray]
    source: str

    @property
    def samples(self) -> int:
        return len(next(iter(self.arrays.values())))

    def take(self, indices: Sequence[int], source: Optional[str] = None) -> Dataset:
        return Dataset({name: array[np.asarray(indices)] for name, array in self.arrays.items()},
                       source or self.source)

    def one_by_one(self):
        """Single-sample feeds (batch of one), as the TFLite and ONNX calibrators take them."""
        for index in range(self.samples):
            yield {name: array[index:index + 1] for name, array in self.arrays.items()}


def evenly(total: int, count: int) -> np.ndarray:
    """`count` indices spread evenly over `total` samples (all of them when count >= total)."""
    if count >= total:
        return np.arange(total)
    return np.unique(np.linspace(0, total - 1, count).round().astype(int))


def auto_calibration_file(source: Path) -> Optional[Path]:
    """`calibration.npz` written by `edgeml train` next to the model (or inside a SavedModel dir)."""
    for folder in ([source] if source.is_dir() else []) + [source.parent]:
        candidate = folder / "calibration.npz"
        if candidate.is_file():
            return candidate
    return None


def synthetic(inputs: List[TensorInfo], count: int = SYNTHETIC_SAMPLES, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    low, high = SYNTHETIC_RANGE
    arrays = {
        info.name: rng.uniform(low, high, (count,) + tuple(d or 1 for d in info.shape[1:])).astype(info.dtype)
        for info in inputs
    }
    return Dataset(arrays, f"synthetic uniform [{low:g}, {high:g})")


def load_data(data, inputs: List[TensorInfo], *, purpose: str, limit: Optional[int] = None) -> Dataset:
    """Read `data` (array, dict by input name, .npy, .npz, image folder or .csv) and check it fits `inputs`."""
    if isinstance(data, np.ndarray):
        arrays, source = _single_input(data, inputs, purpose), "array"
    elif isinstance(data, dict):
        arrays, source = dict(data), "arrays"
    else:
        path = Path(data)
        arrays, source = _read_path(path, inputs, purpose, limit), str(path)
    dataset = Dataset(_checked(arrays, inputs, purpose), source)
    if limit is not None and dataset.samples > limit:
        dataset = dataset.take(evenly(dataset.samples, limit))
    return dataset


def split_for_validation(data: Dataset, calibration_samples: int, cap: int = 200):
    """(calibration, validation): validation samples are held back so they were not calibrated on.

    With more samples than needed, calibration takes `calibration_samples` spread evenly and validation
    gets (up to `cap` of) the rest; otherwise every fifth sample is held back for validation.
    """
    chosen, held_back = split_indices(data.samples, calibration_samples, cap)
    if held_back is None:  # too few to hold any back: validate on the calibration samples themselves
        return data, data.take(chosen, f"{data.source} (same samples as calibration)")
    return data.take(chosen), data.take(held_back, f"{data.source} (held back from calibration)")


def split_indices(total: int, calibration_samples: int, cap: int = 200):
    """(calibration indices, held-back indices or None) as `split_for_validation` takes them."""
    if total > calibration_samples:
        chosen = evenly(total, calibration_samples)
    elif total >= 10:
        chosen = np.array([i for i in range(total) if i % 5 != 4])
    else:
        return np.arange(total), None
    rest = np.setdiff1d(np.arange(total), chosen)
    return chosen, rest[evenly(len(rest), cap)]


# --- reading ------------------------------------------------------------------------------------------


def _single_input(array: np.ndarray, inputs: List[TensorInfo], purpose: str) -> Dict[str, np.ndarray]:
    if len(inputs) != 1:
        names = [info.name for info in inputs]
        raise CalibrationError(
            f"{purpose} data is one array but the model has {len(inputs)} inputs {names}; "
            "pass a dict / .npz keyed by input name"
        )
    return {inputs[0].name: array}


def _read_path(path: Path, inputs: List[TensorInfo], purpose: str, limit: Optional[int]):
    if not path.exists():
        raise CalibrationError(f"{purpose} data not found: {path}")
    if path.is_dir():
        return _read_images(path, inputs, purpose, limit)
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        arrays = _read_arrays(path, purpose)
        if isinstance(arrays, np.ndarray):
            return _single_input(arrays, inputs, purpose)
        return _npz_arrays(arrays, inputs, path, purpose)
    try:
        if suffix == ".csv":
            return _read_csv(path, inputs, purpose)
    except (OSError, ValueError, EOFError) as error:
        raise CalibrationError(f"cannot read {purpose} data {path}: {error}") from None
    raise CalibrationError(
        f"{purpose} data {path}: unknown kind '{suffix}'; use .npy, .npz, .csv or a folder of images"
    )


def _read_arrays(path: Path, purpose: str):
    """A .npy's array or an .npz's arrays, their headers checked before anything is allocated (numbers only,
    no more bytes than the file holds, at most edgeml_runtime.arrayfiles.array_bytes_limit() in all)."""
    from edgeml_runtime import InputError
    from edgeml_runtime.arrayfiles import read_array_file

    try:
        return read_array_file(path)
    except InputError as error:
        raise CalibrationError(f"cannot use {purpose} data {error}") from None


def _npz_arrays(arrays: dict, inputs: List[TensorInfo], path: Path, purpose: str) -> Dict[str, np.ndarray]:
    names = [info.name for info in inputs]
    if all(name in arrays for name in names):
        return {name: arrays[name] for name in names}
    if not arrays:
        raise CalibrationError(f"{purpose} data {path.name} holds no arrays")
    if len(arrays) == 1 or (len(inputs) == 1 and "x" in arrays):
        return _single_input(arrays.get("x", next(iter(arrays.values()))), inputs, purpose)
    raise CalibrationError(
        f"{purpose} data {path.name} has arrays {sorted(arrays)}, the model's inputs are {names}; "
        "name each array after its input"
    )


def _read_images(folder: Path, inputs: List[TensorInfo], purpose: str, limit: Optional[int]):
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"{purpose} folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
    shape = inputs[0].shape
    channels_first = _channels_first(shape)
    if len(inputs) != 1 or len(shape) != 4 or None in shape[1:] or (shape[3] not in (1, 3, 4) and not channels_first):
        raise CalibrationError(
            f"a folder of images needs a model with one image input (batch, height, width, 1/3/4 channels, or "
            f"batch, channels, height, width as from PyTorch); this model takes {[(i.name, i.shape) for i in inputs]}"
        )
    from PIL import Image

    height, width, channels = (shape[2], shape[3], shape[1]) if channels_first else shape[1:]
    chosen = [files[i] for i in evenly(len(files), limit or len(files))]
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    images = []
    for file in chosen:
        with Image.open(file) as image:
            resized = image.convert(mode).resize((width, height), Image.BILINEAR)
        # Raw 0..255 pixels: edgeml-trained models rescale inside the model, like at training time.
        images.append(np.asarray(resized, dtype=np.float32).reshape(height, width, channels))
    stacked = np.stack(images)
    return {inputs[0].name: np.ascontiguousarray(stacked.transpose(0, 3, 1, 2)) if channels_first else stacked}


def _channels_first(shape) -> bool:
    """(N, C, H, W) with 1/3/4 channels and a last axis that cannot be channels: an NCHW (PyTorch/ONNX) image."""
    return len(shape) == 4 and shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4)


def _read_csv(path: Path, inputs: List[TensorInfo], purpose: str):
    import pandas as pd

    frame = pd.read_csv(path)
    if len(inputs) != 1 or len(inputs[0].shape) != 2:
        raise CalibrationError(f"a CSV needs a model with one tabular input (batch, features); got "
                               f"{[(i.name, i.shape) for i in inputs]}")
    features = inputs[0].shape[1]
    numeric = frame.select_dtypes("number")
    if features is not None and numeric.shape[1] == features + 1:
        labels = [c for c in numeric.columns if str(c).lower() in LABEL_COLUMNS]
        numeric = numeric.drop(columns=labels[:1])
    if features is not None and numeric.shape[1] != features:
        raise CalibrationError(
            f"{purpose} CSV {path.name} has {numeric.shape[1]} numeric columns, the model takes {features} "
            "features; keep only the feature columns (text columns must be encoded like at training time)"
        )
    return {inputs[0].name: numeric.to_numpy(dtype=np.float32)}


# --- checking -----------------------------------------------------------------------------------------


def _checked(arrays: dict, inputs: List[TensorInfo], purpose: str) -> Dict[str, np.ndarray]:
    names = [info.name for info in inputs]
    if sorted(arrays) != sorted(names):
        raise CalibrationError(f"{purpose} data has arrays {sorted(arrays)}, the model's inputs are {names}")
    checked, counts = {}, set()
    for info in inputs:
        array = np.asarray(arrays[info.name])
        _check_shape(array, info, purpose)
        if array.dtype.kind not in "biuf":
            raise CalibrationError(f"{purpose} data for '{info.name}' has dtype {array.dtype}; numbers needed")
        array = array.astype(info.dtype)
        if array.dtype.kind == "f":
            bad = ~np.isfinite(array)
            if bad.any():
                first = int(np.argwhere(bad.reshape(len(array), -1).any(axis=1))[0][0])
                raise CalibrationError(
                    f"{purpose} data for '{info.name}' has {int(bad.sum())} NaN/Inf value(s) (first in sample "
                    f"{first}); clean or drop those samples (the TFLite converter crashes on them)"
                )
        checked[info.name] = array
        counts.add(len(array))
    if len(counts) != 1:
        raise CalibrationError(f"{purpose} data: the inputs have different sample counts {sorted(counts)}")
    if counts == {0}:
        raise CalibrationError(f"{purpose} data is empty")
    return checked


def _check_shape(array: np.ndarray, info: TensorInfo, purpose: str) -> None:
    expected = "(N, " + ", ".join("?" if d is None else str(d) for d in info.shape[1:]) + ")"
    sample_shape = array.shape[1:]
    fits = len(sample_shape) == len(info.shape) - 1 and all(
        want is None or want == have for want, have in zip(info.shape[1:], sample_shape)
    )
    if not fits:
        raise CalibrationError(
            f"{purpose} data for '{info.name}' has shape {tuple(array.shape)}, the model needs {expected} "
            "(samples first, then one input's shape)"
        )
