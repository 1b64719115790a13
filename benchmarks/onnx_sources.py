"""ONNX sources: `edgeml convert model.onnx --int8` against the plain tools run by hand, on the same graphs and the
same calibration samples: conversion time (interleaved rounds, medians, the median of per-round ratios) and
fidelity (accuracy on held-out digits, top-1 agreement and largest difference with ONNX Runtime fp32 on the source).

Two routes, each with its by-hand counterpart:
  ONNX int8:   edgeml convert --to onnx --int8          vs  onnxruntime.quantization: quant_pre_process +
               (quantize, validate, write the manifest)      quantize_static (QDQ, per-channel int8), as its docs do
  TFLite int8: edgeml convert --to tflite --fp32 --int8  vs  onnx2tf -oiqt -cind ... alone (in the onnx2tf tool
               (onnx2tf -> SavedModel, our converter,        environment): it writes float32, float16, dynamic-range,
               validation of both files)                     integer and full-integer .tflite files in one run
Each side makes what its command makes: the times compare the commands a user would run, not equal work.
The graphs are tests/support/onnx_graphs.py's NCHW CNN and MLP (classifiers fitted on scikit-learn's digits).
The TFLite route needs `edgeml setup onnx2tf`; without it that part is skipped with the command to run.
Run: python -m benchmarks.onnx_sources [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np

from benchmarks.common import interleaved, median_ratio, print_header
from tests.support import onnx_graphs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
GRAPHS = {"NCHW CNN (1x1x8x8)": onnx_graphs.nchw_cnn, "MLP (Nx64)": onnx_graphs.mlp}


def same_calibration(graph) -> Tuple[Dict[str, np.ndarray], int]:
    """edgeml picks `samples` evenly from the pool (holding the rest back); the plain tools get those same ones."""
    from edgeml_converters.calibration import split_indices

    pool = graph.calibration
    samples = len(next(iter(pool.values()))) - 1
    chosen, _ = split_indices(samples + 1, samples)
    return {name: array[chosen] for name, array in pool.items()}, samples


# ------------------------------------------------------------------------------------------------ the two sides


def edgeml_convert(graph, out: Path, formats, modes, samples: int) -> dict:
    from edgeml_converters import GatesFailed, convert

    try:
        return convert(graph.path, out, formats=formats, modes=modes, calibration=graph.calibration,
                       calibration_samples=samples, validate_data=graph.test, isolate=False, recommend=False)
    except GatesFailed as failed:  # fidelity is reported below either way
        return failed.manifest


def plain_onnxruntime_int8(graph, calibration: Dict[str, np.ndarray], destination: Path) -> Path:
    """onnxruntime.quantization as its documentation shows it: pre-process, then static QDQ int8."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            count = len(next(iter(calibration.values())))
            self.samples = iter([{k: v[i:i + 1] for k, v in calibration.items()} for i in range(count)])

        def get_next(self):
            return next(self.samples, None)

    prepared = destination.with_suffix(".prepared.onnx")
    quant_pre_process(str(graph.path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(destination), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return destination


def plain_onnx2tf(graph, calibration: Dict[str, np.ndarray], folder: Path) -> Path:
    """onnx2tf alone, as its README shows int8 with the user's calibration data (NHWC .npy, mean 0, std 1)."""
    from edgeml_converters import onnx2tf_env

    env = onnx2tf_env.tool_env()
    folder.mkdir(parents=True)
    command = [str(env.python), "-m", "onnx2tf", "-i", str(graph.path), "-o", str(folder / "out"), "-oiqt",
               "-qt", "per-channel", "-n"]
    for name, array in calibration.items():
        nhwc = array.transpose(0, 2, 3, 1) if array.ndim == 4 else array
        np.save(folder / f"{name}.npy", nhwc.astype(np.float32))
        zeros, ones = ("[[[[0.0]]]]", "[[[[1.0]]]]") if array.ndim == 4 else ("[0.0]", "[1.0]")
        command += ["-cind", name, str(folder / f"{name}.npy"), zeros, ones]
    environment = {**os.environ, "PATH": f"{env.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"onnx2tf failed: {(done.stderr or done.stdout)[-800:]}")
    return folder / "out"


# ------------------------------------------------------------------------------------------------ fidelity


def onnxruntime_outputs(path: Path, feeds: Dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    count = len(next(iter(feeds.values())))
    return np.concatenate([session.run(None, {k: v[i:i + 1] for k, v in feeds.items()})[0] for i in range(count)])


def tflite_outputs(path: Path, feeds: Dict[str, np.ndarray]) -> np.ndarray:
    """One sample at a time (fixed-batch graphs), inputs in TFLite's NHWC, float in and out (the runtime
    quantizes int8 inputs and dequantizes outputs)."""
    import edgeml_runtime

    model = edgeml_runtime.load(path)
    arrays = [feeds[name] for name in feeds]
    nhwc = [a.transpose(0, 2, 3, 1) if a.ndim == 4 else a for a in arrays]
    count = len(nhwc[0])
    return np.concatenate([next(iter(model.run([a[i:i + 1] for a in nhwc]).values())) for i in range(count)])


def fidelity(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> str:
    accuracy = float(np.mean(outputs.argmax(1) == labels))
    agreement = float(np.mean(outputs.argmax(1) == reference.argmax(1)))
    return f"{accuracy:9.1%}{agreement:9.1%}{float(np.max(np.abs(outputs - reference))):11.2e}"


def artifact(manifest: dict, out: Path, fmt: str, mode: str) -> Path:
    entry = next(e for e in manifest["artifacts"] if e["format"] == fmt and e["quantization"] == mode)
    return out / entry["path"]


# ------------------------------------------------------------------------------------------------ rounds


def timed(action: Callable[[int], object], results: dict, key: str) -> Callable[[], float]:
    counter = iter(range(1_000_000))

    def step() -> float:
        started = time.perf_counter()
        results[key] = action(next(counter))
        return time.perf_counter() - started
    return step


def report_times(measured: Dict[str, list], plain: str, ours: str) -> None:
    for name in (plain, ours):
        print(f"  {name:44}{statistics.median(measured[name]):8.2f} s")
    print(f"  {'ratio edgeml / plain (median of rounds)':44}{median_ratio(measured[plain], measured[ours]):8.2f}")


def onnx_route(graph, root: Path, rounds: int) -> None:
    calibration, samples = same_calibration(graph)
    results: dict = {}
    plain, ours = "onnxruntime.quantization by hand", "edgeml convert --to onnx --int8"
    measured = interleaved({
        plain: timed(lambda i: plain_onnxruntime_int8(graph, calibration, root / f"plain-{i}.int8.onnx"), results,
                     "plain"),
        ours: timed(lambda i: (edgeml_convert(graph, root / f"edgeml-onnx-{i}", ("onnx",), ("int8",), samples),
                               root / f"edgeml-onnx-{i}"), results, "edgeml"),
    }, rounds)
    print(" ONNX int8")
    report_times(measured, plain, ours)
    reference = onnxruntime_outputs(graph.path, graph.test)
    manifest, out = results["edgeml"]
    print(f"  {'fidelity on held-out digits':44}{'accuracy':>9}{'top-1 =':>9}{'max diff':>11}")
    print(f"  {'ONNX Runtime fp32 (the source)':44}{fidelity(reference, reference, graph.labels)}")
    print(f"  {plain:44}{fidelity(onnxruntime_outputs(results['plain'], graph.test), reference, graph.labels)}")
    edgeml_path = artifact(manifest, out, "onnx", "int8")
    weights = (manifest["artifacts"][-1].get("target") or {}).get("weight_bits")
    print(f"  {ours:44}{fidelity(onnxruntime_outputs(edgeml_path, graph.test), reference, graph.labels)}"
          f"  ({weights or 8}-bit weights for this CPU)")


def tflite_route(graph, root: Path, rounds: int) -> None:
    calibration, samples = same_calibration(graph)
    results: dict = {}
    plain, ours = "onnx2tf -oiqt alone (5 .tflite files)", "edgeml convert --to tflite (fp32 + int8)"
    measured = interleaved({
        plain: timed(lambda i: plain_onnx2tf(graph, calibration, root / f"onnx2tf-{i}"), results, "plain"),
        ours: timed(lambda i: (edgeml_convert(graph, root / f"edgeml-tflite-{i}", ("tflite",), ("fp32", "int8"),
                                              samples), root / f"edgeml-tflite-{i}"), results, "edgeml"),
    }, rounds)
    print(" TFLite")
    report_times(measured, plain, ours)
    reference = onnxruntime_outputs(graph.path, graph.test)
    manifest, out = results["edgeml"]
    stem = graph.path.stem
    rows = [("onnx2tf float32.tflite", results["plain"] / f"{stem}_float32.tflite"),
            ("onnx2tf full_integer_quant.tflite (int8 I/O)", results["plain"] / f"{stem}_full_integer_quant.tflite"),
            ("edgeml fp32 .tflite", artifact(manifest, out, "tflite", "fp32")),
            ("edgeml int8 .tflite (int8 I/O)", artifact(manifest, out, "tflite", "int8"))]
    print(f"  {'fidelity on held-out digits':44}{'accuracy':>9}{'top-1 =':>9}{'max diff':>11}{'bytes':>9}")
    for name, path in rows:
        print(f"  {name:44}{fidelity(tflite_outputs(path, graph.test), reference, graph.labels)}"
              f"{path.stat().st_size:9d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from edgeml_converters import onnx2tf_env

    print_header("ONNX sources: edgeml convert vs the plain tools by hand (same graphs, same calibration samples)")
    problem = onnx2tf_env.problem()
    if problem:
        print(f"TFLite route skipped: {problem}\n")
    for title, build in GRAPHS.items():
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            graph = build(root / "model.onnx")
            samples = same_calibration(graph)[1]
            print(f"{title}: {samples} calibration samples (the same ones for both sides), {len(graph.labels)} "
                  f"held-out digits, {args.rounds} rounds")
            onnx_route(graph, root, args.rounds)
            if not problem:
                tflite_route(graph, root, args.rounds)
            print()


if __name__ == "__main__":
    main()
