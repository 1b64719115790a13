"""edgeml's int8 TFLite vs a plain `TFLiteConverter` int8 conversion, same model and calibration data.

Prints, side by side: conversion time, file size, latency (median of edgeml_runtime.benchmark) and
top-1 agreement / cosine with the float Keras model on held-out inputs; then conversion time per mode.
Run: .venv/bin/python -m benchmarks.convert_int8
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_model(root: Path):
    """A small image classifier (16x16x3, 4 classes) trained on synthetic blobs, so agreement means something."""
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 1200)
    images = rng.normal(0, 30, (1200, 16, 16, 3)) + 128
    for index, label in enumerate(labels):  # each class brightens one quadrant
        row, col = divmod(int(label), 2)
        images[index, row * 8:(row + 1) * 8, col * 8:(col + 1) * 8] += 60
    images = np.clip(images, 0, 255).astype("float32")
    model = keras.Sequential([
        keras.Input((16, 16, 3), name="pixels"), keras.layers.Rescaling(1 / 255.0),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(4, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images[:1000], labels[:1000], epochs=5, verbose=0)
    model.save(root / "model.keras")
    return model, images[:300], images[1000:]


def plain_int8(model, calibration: np.ndarray, destination: Path) -> float:
    """The textbook recipe: from_keras_model + representative_dataset, int8 I/O."""
    import tensorflow as tf

    started = time.perf_counter()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None]] for sample in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    destination.write_bytes(converter.convert())
    return time.perf_counter() - started


def agreement(model_path: Path, reference: np.ndarray, held_out: np.ndarray):
    import edgeml_runtime

    model = edgeml_runtime.load(model_path)
    outputs = np.concatenate([next(iter(model.run(held_out[i:i + 1]).values())) for i in range(len(held_out))])
    top1 = float(np.mean(outputs.argmax(1) == reference.argmax(1)))
    cosine = float(np.mean(np.sum(outputs * reference, 1) /
                           (np.linalg.norm(outputs, axis=1) * np.linalg.norm(reference, axis=1))))
    return top1, cosine


def latency_ms(model_path: Path) -> float:
    import edgeml_runtime

    return edgeml_runtime.benchmark(str(model_path), runs=200, threads=1).to_dict()["latency_ms"]["p50"]


def main() -> None:
    from edgeml_converters import GatesFailed, convert

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model, calibration, held_out = build_model(root)
        reference = np.asarray(model(held_out))

        plain_path = root / "plain.int8.tflite"
        plain_seconds = plain_int8(model, calibration, plain_path)
        started = time.perf_counter()
        convert(root / "model.keras", root / "edgeml", formats=("tflite",), modes=("int8",),
                calibration=calibration, isolate=False)
        edgeml_seconds = time.perf_counter() - started  # includes loading, validation, manifest
        edgeml_path = root / "edgeml" / "model.int8.tflite"

        rows = []
        for name, path, seconds in (("plain TFLiteConverter", plain_path, plain_seconds),
                                    ("edgeml convert", edgeml_path, edgeml_seconds)):
            top1, cosine = agreement(path, reference, held_out)
            rows.append((name, seconds, path.stat().st_size, latency_ms(path), top1, cosine))
        print(f"int8 TFLite, 16x16x3 CNN, {len(calibration)} calibration / {len(held_out)} held-out samples")
        print(f"{'':24}{'convert s':>10}{'bytes':>9}{'p50 ms':>9}{'top-1':>8}{'cosine':>9}")
        for name, seconds, size, p50, top1, cosine in rows:
            print(f"{name:24}{seconds:10.2f}{size:9d}{p50:9.4f}{top1:8.1%}{cosine:9.5f}")
        base = rows[0]
        print(f"{'ratio edgeml/plain':24}{rows[1][1] / base[1]:10.2f}{rows[1][2] / base[2]:9.2f}"
              f"{rows[1][3] / base[3]:9.2f}")

        print("\nconversion time per mode (edgeml convert, in-process, median of 3, includes validation)")
        for mode in ("fp32", "fp16", "dynamic", "int8", "int16x8"):
            for fmt in ("tflite", "onnx"):
                if fmt == "onnx" and mode == "int16x8":
                    continue
                times, verdict = [], "passed its gate"
                for attempt in range(3):
                    started = time.perf_counter()
                    try:
                        convert(root / "model.keras", root / f"m-{mode}-{fmt}-{attempt}", formats=(fmt,),
                                modes=(mode,), calibration=calibration, isolate=False)
                    except GatesFailed as failure:  # still timed: the files were written and validated
                        check = failure.manifest["artifacts"][-1]["validation"]
                        verdict = f"FAILED its gate: top-1 {check['top1_agreement']:.1%}, cosine {check['cosine']:.5f}"
                    times.append(time.perf_counter() - started)
                print(f"  {fmt:7}{mode:9}{statistics.median(times):7.2f} s   {verdict}")


if __name__ == "__main__":
    main()
