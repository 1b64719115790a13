"""Everything `edgeml train` writes, first into a temporary folder, then renamed into place."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
from edgeml_runtime.formats import LABELS_SCHEMA

from edgeml.trainer.dataset import CLASSIFICATION, IMAGE, Dataset
from edgeml.trainer.models import OUTPUT_NAME, scaling_facts

METRICS_SCHEMA = "edgeml.metrics/1"


class StagedOutput:
    """Files written under a hidden sibling folder and moved into `outdir` only when all succeeded,
    so a failed run leaves a previous model in `outdir` untouched."""

    def __init__(self, outdir: Path):
        self.outdir = Path(outdir)
        self.outdir.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.outdir.name}.tmp-", dir=self.outdir.parent))

    def path(self, name: str) -> Path:
        return self.staging / name

    def commit(self) -> list[Path]:
        self.outdir.mkdir(parents=True, exist_ok=True)
        moved = []
        for staged in sorted(self.staging.iterdir()):
            target = self.outdir / staged.name
            os.replace(staged, target)
            moved.append(target)
        self.discard()
        return moved

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def write_json(path: Path, payload: dict) -> Path:
    """Write to a temporary name first, so a reader never sees half a file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    os.replace(temporary, path)
    return path


def labels_payload(data: Dataset, model) -> dict:
    """What a device needs to go from a raw sample to the model input, and from the output to a label."""
    spec = model.inputs[0]
    payload = {
        "schema": LABELS_SCHEMA,
        "task": data.task,
        "source": data.source,
        "target": data.target,
        "classes": data.classes,
        "inputs": [{"name": data.input_name, "shape": [None, *spec.shape[1:]], "dtype": "float32"}],
        "outputs": [{"name": OUTPUT_NAME, "shape": [None, *model.outputs[0].shape[1:]], "dtype": "float32",
                     "meaning": _output_meaning(data)}],
        "preprocessing": {"outside_model": _outside_steps(data), "in_model": [scaling_facts(model)]},
    }
    if data.features is not None:
        payload["feature_names"] = data.features["vector"]
        payload["features"] = data.features
    if data.image is not None:
        payload["image"] = data.image
    return payload


def calibration_arrays(data: Dataset, x_train: np.ndarray, y_train: np.ndarray, samples: int,
                       seed: int) -> dict[str, np.ndarray]:
    """A class-balanced random sample of raw training inputs, keyed by input name and by 'x'.

    Classes take turns (round robin), so each gets the same share until a small class runs out.
    """
    rng = np.random.default_rng(seed)
    if data.task == CLASSIFICATION:
        per_class = [rng.permutation(np.flatnonzero(y_train == label)) for label in range(data.num_classes)]
        turns = sorted((rank, label) for label, indices in enumerate(per_class) for rank in range(len(indices)))
        chosen = np.asarray([per_class[label][rank] for rank, label in turns[:samples]], dtype=np.int64)
    else:
        chosen = rng.permutation(len(x_train))[:samples]
    chosen = np.sort(chosen)
    sample = x_train[chosen].astype(np.float32)
    return {data.input_name: sample, "x": sample}


def save_model(model, staged: StagedOutput, *, save_h5: bool) -> list[Path]:
    paths = [staged.path("model.keras")]
    model.save(paths[0])
    if save_h5:
        paths.append(staged.path("model.h5"))
        model.save(paths[1])
    return paths


def _outside_steps(data: Dataset) -> list[str]:
    if data.kind == IMAGE:
        image = data.image or {}
        steps = [f"arrange pixels as float32 [batch, {image.get('height')}, {image.get('width')}, "
                 f"{image.get('channels')}] (NHWC) with values in {image.get('value_range')}"]
        if "resize" in image:
            steps.insert(0, f"{image['resize']} to {image['width']}x{image['height']}, mode {image['color_mode']}")
        return steps
    return ["build the float32 feature vector from raw column values as described in 'features' "
            "(numeric as is, categories one-hot, missing values replaced by 'fill'); "
            "edgeml_runtime.metadata.encode_records does this with numpy only, as the trainer did"]


def _output_meaning(data: Dataset) -> str:
    if data.task == CLASSIFICATION:
        return "class probabilities (softmax) in the order of 'classes'; label = classes[argmax]"
    return f"the predicted value of {data.target or 'the target'}, in its original units"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def preprocessing_summary(payload: dict) -> Optional[str]:
    """A short human line, e.g. 'image rescale 1/16 baked in'."""
    step = payload["preprocessing"]["in_model"][0]
    if step["op"] == "rescale":
        return f"image rescale 1/{round(1 / step['scale']):g} baked in"
    return "normalization adapted on the training split baked in"
