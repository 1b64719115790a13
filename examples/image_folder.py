"""Classify frames from a camera: here a folder of images stands in for the camera (needs Pillow).

    python examples/image_folder.py MODEL_OR_DIR IMAGES/ [--loop] [--interval 0.2]

Each image (PNG, JPEG, BMP..., in name order) is one frame: converted to the model's colour mode, resized to
the model's input size and turned into the float pixels the model takes, then classified. The input size and
channels come from the model's input (NHWC: batch, height, width, channels); labels.json (written by
`edgeml train` and copied by `edgeml convert`) adds the class names and the raw value range the model was
trained on (e.g. 0..16 for scikit-learn's digits, 0..255 for photos; scaling is inside the model).

A real camera loop replaces frames() with picamera2's `capture_array()` or OpenCV's `VideoCapture.read()`
(convert BGR to RGB), and keeps the rest.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from edgeml_runtime import Predictor
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def frames(folder: Path, loop: bool):
    """(name, PIL image) for every image in the folder; again and again with `loop`, like a camera."""
    paths = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"no images in {folder} ({', '.join(IMAGE_SUFFIXES)})")
    while True:
        for path in paths:
            with Image.open(path) as image:
                yield path.name, image.copy()
        if not loop:
            return


def to_model_input(image: Image.Image, predictor) -> np.ndarray:
    """One frame -> one sample shaped like the model's input (height, width, channels), float32 pixels in the
    value range the model was trained on."""
    _, height, width, channels = predictor.model.inputs[0].shape
    facts = predictor.metadata.image or {}
    height, width = height or facts.get("height"), width or facts.get("width")
    channels = channels or facts.get("channels", 3)
    if height is None or width is None:
        height, width = image.height, image.width  # a model taking any size: the frame as it is
    mode = "L" if channels == 1 else "RGB"
    resized = image.convert(mode).resize((int(width), int(height)), Image.BILINEAR)  # PIL takes (width, height)
    pixels = np.asarray(resized, dtype=np.float32).reshape(int(height), int(width), int(channels))
    low, high = facts.get("value_range", [0, 255])
    return (low + pixels * ((high - low) / 255.0)).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="model file, manifest, bundle or deployment directory")
    parser.add_argument("images", type=Path, help="folder of images standing in for the camera")
    parser.add_argument("--loop", action="store_true", help="start again after the last image (Ctrl-C stops)")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between frames")
    args = parser.parse_args()

    predictor = Predictor.from_path(args.source)
    shape = predictor.model.inputs[0].shape
    if len(predictor.model.inputs) != 1 or len(shape) != 4:
        raise SystemExit(f"this example feeds images to a model with one (batch, height, width, channels) input; "
                         f"this one takes {[spec.describe() for spec in predictor.model.inputs]}")
    try:
        for name, image in frames(args.images, args.loop):
            started = time.perf_counter()
            result = predictor.predict(to_model_input(image, predictor))
            took_ms = (time.perf_counter() - started) * 1000
            if result.label is not None:
                shown = f"{result.label} ({result.score:.2f})"
            else:
                shown = f"{result.output.size} output values"
            print(f"{name}: {shown} in {took_ms:.2f} ms", flush=True)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
