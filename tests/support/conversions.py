"""Handmade `edgeml convert` output folders from the committed tiny models, with a `recommended` entry, for the
tests of what follows the recommendation (serve, Predictor, bundle, bench, select).

    out = conversion_dir(tmp_path / "converted")                  # recommends mlp_fp32.onnx, the LAST artifact
    out = conversion_dir(..., recommended=None)                   # no measurement recorded
    out = conversion_dir(..., failed={"mlp_fp32.onnx"})           # that artifact failed its validation gate

Artifacts in manifest order: mlp_fp32.tflite, mlp_int8.tflite, mlp_fp32.onnx (so the recommended one is never the
first one, which is what consumers took before recommendations existed), plus labels.json.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Iterable, Optional

from .models import MLP_FP32, MLP_INT8, MLP_ONNX

ARTIFACTS = ((MLP_FP32, "fp32"), (MLP_INT8, "int8"), (MLP_ONNX, "fp32"))
CLASSES = ["idle", "walk", "run", "fall"]
THIS_MACHINE = {"kind": "this machine", "hostname": "converter", "arch": "x86_64", "cpu": "test CPU", "cores": 2}
A_DEVICE = {"kind": "device", "host": "pi@192.0.2.10", "hostname": "pi", "arch": "aarch64", "cpu": "Cortex-A72",
            "cores": 4}


def conversion_dir(folder: Path, *, recommended: Optional[str] = MLP_ONNX.name, failed: Iterable[str] = (),
                   measured_on: Optional[dict] = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for model, quantization in ARTIFACTS:
        shutil.copyfile(model, folder / model.name)
        data = model.read_bytes()
        artifacts.append({"path": model.name, "format": model.suffix[1:], "quantization": quantization,
                          "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                          "validation": {"samples": 8, "passed": model.name not in set(failed)}})
    (folder / "labels.json").write_text(json.dumps({"schema": "edgeml.labels/1", "task": "classification",
                                                    "classes": CLASSES}))
    manifest = {"schema": "edgeml.manifest/1", "source": {"path": "model.keras", "kind": "keras"},
                "artifacts": artifacts, "metadata": {"labels": "labels.json"}}
    if recommended is not None:
        entry = next(a for a in artifacts if a["path"] == recommended)
        manifest["recommended"] = {"path": recommended, "threads": 1, "p50_ms": 0.02, "format": entry["format"],
                                   "quantization": entry["quantization"], "bytes": entry["bytes"],
                                   "measured_on": measured_on or THIS_MACHINE, "table": []}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder
