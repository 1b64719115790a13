"""int8 that keeps its accuracy: plain int8 vs repaired (`--max-drop`), and what `--explain` costs.

Three models trained here on scikit-learn's digits (8x8, values 0..16; tests/support/precision_models.py): a small
CNN like the trainer's, the inflated-channel MLP (one hidden unit x300, the next layer / 300: the float function is
the same, plain int8 collapses) and a small MobileNet-style CNN (depthwise-separable Conv/BN/ReLU blocks). Each is
converted to TFLite and ONNX (fp32 + int8) in this process (`isolate=False`) three ways, in a rotating order per
round: plain int8 (`repair=False`), plain int8 with `explain=True`, and `max_drop=1` (the repair ladder, labelled
test data as the budget's yardstick). Reported per artifact: accuracy on the 360 test images, size, p50 latency
(edgeml_runtime.benchmark, one thread), the repair rung; per model: conversion time of each way (median over
rounds) and the --explain cost ratio (median over rounds of explain / plain).
Run: python -m benchmarks.precision_recovery [--rounds 2] [--only inflated]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import print_header

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
MODELS = ("digits_cnn", "inflated", "mobilenet_style")
WAYS = {"plain": {"repair": False}, "explain": {"repair": False, "explain": True}, "repaired": {"max_drop": 1.0}}


def build(name: str, data, folder: Path) -> Path:
    from tests.support import precision_models

    folder.mkdir(parents=True)
    model = {"digits_cnn": lambda: precision_models.digits_cnn(data, epochs=40),
             "inflated": lambda: precision_models.inflated_channel(data),
             "mobilenet_style": lambda: precision_models.mobilenet_style(data, epochs=15)}[name]()
    model.save(folder / "model.keras")
    # What `edgeml train` leaves next to a model: calibration samples and the labelled test split.
    np.savez(folder / "calibration.npz", x=data.x_train[:300])
    np.savez(folder / "test.npz", x=data.x_test, y=data.y_test)
    return folder / "model.keras"


def convert_once(source: Path, out: Path, options: dict):
    from edgeml_converters import GatesFailed, convert

    started = time.perf_counter()
    try:
        manifest = convert(source, out, isolate=False, modes=("fp32", "int8"), **options)
    except GatesFailed as failed:
        manifest = failed.manifest
    return manifest, time.perf_counter() - started


def accuracy(path: Path, data) -> float:
    import edgeml_runtime

    model = edgeml_runtime.load(path)
    outputs = next(iter(model.run(data.x_test).values()))
    return float(np.mean(outputs.argmax(axis=1) == data.y_test))


def p50(path: Path) -> float:
    import edgeml_runtime

    return edgeml_runtime.benchmark(path, runs=200, warmup=10, min_seconds=0.5, threads=1).latency_ms["p50"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=MODELS, action="append")
    args = parser.parse_args()
    import keras

    from tests.support.precision_models import digits

    print_header("int8 that keeps its accuracy: plain int8 vs repaired (--max-drop 1), and the cost of --explain")
    data = digits()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        rows, costs = [], []
        for name in args.only or MODELS:
            source = build(name, data, root / name)
            original = keras.saving.load_model(source).predict(data.x_test, verbose=0)
            float_accuracy = float(np.mean(original.argmax(axis=1) == data.y_test))
            times = {way: [] for way in WAYS}
            manifests = {}
            for round_index in range(args.rounds):
                order = list(WAYS)[round_index % len(WAYS):] + list(WAYS)[:round_index % len(WAYS)]
                for way in order:
                    out = root / f"{name}-{way}-{round_index}"
                    manifests[way], seconds = convert_once(source, out, WAYS[way])
                    manifests[way]["_out"] = out
                    times[way].append(seconds)
            ratios = [e / p for e, p in zip(times["explain"], times["plain"])]
            costs.append((name, statistics.median(times["plain"]), statistics.median(times["explain"]),
                          statistics.median(ratios), statistics.median(times["repaired"])))
            for way in ("plain", "repaired"):
                manifest = manifests[way]
                entries = {entry["path"]: entry for entry in manifest["artifacts"]}
                for fmt in ("tflite", "onnx"):
                    fp32, int8 = entries[f"model.fp32.{fmt}"], entries[f"model.int8.{fmt}"]
                    file = manifest["_out"] / int8["path"]
                    repair = int8.get("repair") or {}
                    mixed = ", ".join(f"{item['layer']}: {item['precision']}" for item in int8.get("mixed", []))
                    rows.append((name, fmt, way, float_accuracy, accuracy(file, data), int8["bytes"] / 1024,
                                 int8["bytes"] / fp32["bytes"], p50(file), p50(manifest["_out"] / fp32["path"]),
                                 statistics.median(times[way]),
                                 (f"({repair['rung']}) {repair.get('applied', '')[:40]}" if repair.get("rung")
                                  else ("none met" if repair else "-")) + (f" [{mixed}]" if mixed else "")))
        print("| model | format | int8 | float acc | int8 acc | size KiB | x fp32 | p50 ms | fp32 p50 ms | "
              "conversion s | repair |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for row in rows:
            print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]:.1%} | {row[4]:.1%} | {row[5]:.1f} | {row[6]:.2f} | "
                  f"{row[7]:.3f} | {row[8]:.3f} | {row[9]:.1f} | {row[10]} |")
        print()
        print("| model | conversion s (plain int8) | with --explain | --explain cost ratio | with --max-drop 1 |")
        print("|---|---|---|---|---|")
        for name, plain, explain, ratio, repaired in costs:
            print(f"| {name} | {plain:.1f} | {explain:.1f} | {ratio:.2f}x | {repaired:.1f} |")


if __name__ == "__main__":
    main()
