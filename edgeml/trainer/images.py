"""Image folders (one sub-folder per class) -> Dataset, resized with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeml.trainer.dataset import CLASSIFICATION, IMAGE, Dataset
from edgeml.trainer.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def folder_dataset(root: Path, *, image_size: int) -> Dataset:
    """Load every image under root/<class>/, resized to image_size x image_size (bilinear)."""
    files = _class_files(root)
    labelled = [(label, path) for label, paths in enumerate(files.values()) for path in paths]
    # Opening reads only the header, so the colour mode is known before decoding any pixels.
    grayscale = all(_mode(path) in GRAY_MODES for _, path in labelled)
    mode = "L" if grayscale else "RGB"
    x = np.stack([_pixels(path, mode, image_size) for _, path in labelled]).astype(np.float32)
    y = np.asarray([label for label, _ in labelled], dtype=np.int64)
    return Dataset(
        x=x, y=y, task=CLASSIFICATION, kind=IMAGE, source=str(root), classes=list(files),
        image={
            "height": image_size, "width": image_size, "channels": 1 if grayscale else 3,
            "color_mode": "grayscale" if grayscale else "rgb", "layout": "NHWC",
            "resize": "Pillow Image.resize(size, Image.BILINEAR) after convert(mode)",
            "value_range": [0, 255],
        },
        rescale=1.0 / 255.0,
    )


def _class_files(root: Path) -> dict[str, list[Path]]:
    folders = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    files = {
        folder.name: sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
        for folder in folders
    }
    files = {name: paths for name, paths in files.items() if paths}
    if not files:
        raise DataError(f"no images found in {root}; expected one sub-folder of images per class")
    if len(files) < 2:
        raise DataError(f"{root} has a single class ({next(iter(files))!r}); add a sub-folder per class")
    return files


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"cannot read image {path}: {error}; remove or replace the file") from error


def _mode(path: Path) -> str:
    with _open(path) as image:
        return image.mode


def _pixels(path: Path, mode: str, size: int) -> np.ndarray:
    from PIL import Image

    try:
        with _open(path) as image:
            resized = image.convert(mode).resize((size, size), Image.BILINEAR)
    except OSError as error:  # truncated or corrupt pixel data shows up only when decoding
        raise DataError(f"cannot read image {path}: {error}; remove or replace the file") from error
    array = np.asarray(resized, dtype=np.float32)
    return array[..., None] if array.ndim == 2 else array
