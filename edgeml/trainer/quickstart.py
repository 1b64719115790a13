"""The whole product on built-in data: train digits, convert, measure each artifact's accuracy and speed.

Accuracy is measured through `edgeml_runtime` on the held-out test split (not only agreement with the
Keras model), so the table shows what quantization really costs. quickstart.json and report.html (the same
facts with plots, `edgeml.report`) are written to the output folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from edgeml_runtime.progress import ProgressCallback, report

from edgeml.trainer.outputs import write_json

SCHEMA = "edgeml.quickstart/1"
REPORT_FILE = "report.html"  # next to quickstart.json (edgeml.report)
FORMATS = ("tflite", "onnx")
MODES = ("fp32", "int8")
# Width 2 (about 87k parameters): the weights, not the file's fixed overhead, dominate the file size,
# so int8 shows its ~4x saving; still trains on digits in seconds.
DIGITS_WIDTH = 2.0


@dataclass
class QuickstartConfig:
    epochs: int = 60
    seed: int = 0
    width: float = DIGITS_WIDTH
    bench_runs: int = 100
    bench_seconds: float = 0.5  # minimum timed seconds per artifact


@dataclass
class QuickstartResult:
    outdir: Path
    keras: dict
    rows: list = field(default_factory=list)
    gates_failed: Optional[str] = None
    seconds: dict = field(default_factory=dict)
    # The conversion's recommendation (path relative to outdir, threads, p50_ms, reason, measured_on); None if none.
    recommended: Optional[dict] = None

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "outdir": str(self.outdir), "keras": self.keras, "artifacts": self.rows,
                "gates_failed": self.gates_failed, "seconds": self.seconds, "recommended": self.recommended,
                "report": REPORT_FILE}


def quickstart(outdir, config: Optional[QuickstartConfig] = None, *,
               progress: ProgressCallback = None) -> QuickstartResult:
    """Train on digits, convert to TFLite and ONNX (fp32, int8), measure every file; write quickstart.json.

    `progress` receives the trainer's, the converters' and this workflow's ProgressEvents.
    """
    from edgeml.trainer import FitConfig, ModelConfig, load_data, train

    config = config or QuickstartConfig()
    outdir = Path(outdir)
    seconds = {}
    started = time.perf_counter()
    data = load_data(dataset="digits")
    trained = train(data, outdir / "model", model_config=ModelConfig(width=config.width),
                    fit_config=FitConfig(epochs=config.epochs, seed=config.seed), progress=progress)
    seconds["train"] = _since(started)
    x_test, y_test = trained.split.x_test, trained.split.y_test
    keras_accuracy = trained.metrics["test"]["accuracy"]
    keras_latency = _keras_latency_ms(trained.model, x_test[:1])
    keras_row = {"format": "keras", "quantization": "fp32", "path": "model/model.keras",
                 "bytes": (outdir / "model" / "model.keras").stat().st_size, "accuracy": keras_accuracy,
                 "p50_ms": keras_latency["p50"], "latency_ms": keras_latency, "backend": "tensorflow"}

    started = time.perf_counter()
    manifest, gates_failed = _convert(outdir, progress)
    seconds["convert"] = _since(started)

    started = time.perf_counter()
    rows = [_measure(outdir / "converted", entry, x_test, y_test, keras_accuracy, config, progress)
            for entry in manifest["artifacts"]]
    seconds["evaluate_and_bench"] = _since(started)
    fp32_bytes = {row["format"]: row["bytes"] for row in rows if row["quantization"] == "fp32"}
    recommended = _recommended(manifest)
    for row in rows:
        fp32 = fp32_bytes.get(row["format"])
        row["size_vs_fp32"] = round(row["bytes"] / fp32, 4) if fp32 else None
        row["recommended"] = recommended is not None and row["path"] == recommended["path"]
    result = QuickstartResult(outdir, keras_row, rows, gates_failed, seconds, recommended)
    write_json(outdir / "quickstart.json", result.to_dict())
    report(progress, "report", "writing report.html")
    from edgeml.report import write_quickstart_report

    write_quickstart_report(outdir, result.to_dict())
    return result


def _convert(outdir: Path, progress: ProgressCallback) -> tuple[dict, Optional[str]]:
    """All four artifacts; a missed validation gate is reported in the table rather than hidden."""
    from edgeml_converters import GatesFailed, convert

    source = outdir / "model" / "model.keras"
    try:
        manifest = convert(source, outdir / "converted", formats=FORMATS, modes=MODES,
                           validate_data=outdir / "model" / "test.npz", progress=progress)
        return manifest, None
    except GatesFailed as failed:
        return failed.manifest, str(failed)


def _recommended(manifest: dict) -> Optional[dict]:
    """What `edgeml convert` recommends (measured at every thread count, interleaved), without its full table."""
    from edgeml_runtime.formats import RECOMMENDED_KEY

    chosen = manifest.get(RECOMMENDED_KEY)
    if not chosen:
        return None
    measured_on = chosen.get("measured_on") or {}
    return {"path": f"converted/{chosen['path']}", "threads": chosen["threads"], "p50_ms": chosen["p50_ms"],
            "reason": chosen.get("reason", ""), "measured_on": measured_on.get("kind", "this machine")}


def _measure(folder: Path, entry: dict, x_test, y_test, keras_accuracy: float, config,
             progress: ProgressCallback) -> dict:
    import edgeml_runtime

    report(progress, "evaluate", f"evaluating and benchmarking {entry['path']}")
    model = edgeml_runtime.load(folder / entry["path"])
    outputs = model.run(x_test)  # float input; an int8 model is quantized/dequantized by the runtime
    probabilities = next(iter(outputs.values()))
    accuracy = float(np.mean(np.argmax(probabilities, axis=-1) == y_test))
    bench = edgeml_runtime.benchmark(model, runs=config.bench_runs, warmup=5, min_seconds=config.bench_seconds,
                                     inputs=x_test[:1])
    return {
        "format": entry["format"], "quantization": entry["quantization"], "path": f"converted/{entry['path']}",
        "bytes": entry["bytes"], "accuracy": accuracy, "delta_accuracy": accuracy - keras_accuracy,
        "p50_ms": bench.latency_ms["p50"], "latency_ms": bench.latency_ms, "backend": bench.backend,
        "validation_passed": entry["validation"]["passed"],
    }


def _keras_latency_ms(model, sample: np.ndarray, runs: int = 50) -> dict:
    """Single-sample latency statistics of the Keras model (a direct call, no tf.function retracing), as
    edgeml_runtime's benchmark reports them (p50, p90, p99, min, max...)."""
    from edgeml_runtime.bench import latency_stats

    model(sample, training=False)
    latencies = []
    for _ in range(runs):
        started = time.perf_counter()
        model(sample, training=False)
        latencies.append((time.perf_counter() - started) * 1000.0)
    return latency_stats(latencies)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 2)
