"""edgeml's int8 TFLite vs a plain `TFLiteConverter` int8 conversion: same model file, same calibration
samples, same held-out samples, same steps timed.

Both start from the saved .keras file and end with a validated int8 .tflite: load the model, calibrate on
the same 300 samples and convert, write the file, run the held-out samples through LiteRT and compare with
the Keras model (top-1 agreement, cosine). edgeml convert does that as one call (in this process, as
`isolate=False`; it also writes its manifest); the plain recipe does it by hand. Each round runs both, in
alternating order; times are medians, the ratio the median of per-round ratios. Then: file size, latency
(edgeml_runtime.benchmark, median of interleaved rounds) and agreement of the two files.
Run: python -m benchmarks.convert_int8 [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import interleaved, median_ratio, print_header

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CALIBRATION = 300


def build_model(root: Path):
    """A small image classifier (16x16x3, 4 classes) trained on synthetic blobs, so agreement means something.
    Returns the calibration pool (CALIBRATION + 1 images) and the held-out images."""
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
    return images[:CALIBRATION + 1], images[1000:]


def same_samples(pool: np.ndarray) -> np.ndarray:
    """The samples edgeml calibrates on when given `pool` with calibration_samples=CALIBRATION (it spreads its
    pick evenly over a larger pool; with exactly CALIBRATION it would hold every fifth back for validation)."""
    from edgeml_converters.calibration import split_indices

    chosen, _ = split_indices(len(pool), CALIBRATION)
    assert len(chosen) == CALIBRATION
    return pool[chosen]


def compare_with_keras(keras_model, tflite_path: Path, held_out: np.ndarray):
    """Top-1 agreement and mean cosine of the .tflite (run in LiteRT through edgeml_runtime, floats in and
    out) with the Keras model on the held-out samples."""
    import edgeml_runtime

    reference = np.asarray(keras_model(held_out))
    model = edgeml_runtime.load(tflite_path)
    outputs = np.concatenate([next(iter(model.run(held_out[i:i + 1]).values())) for i in range(len(held_out))])
    top1 = float(np.mean(outputs.argmax(1) == reference.argmax(1)))
    cosine = float(np.mean(np.sum(outputs * reference, 1) /
                           (np.linalg.norm(outputs, axis=1) * np.linalg.norm(reference, axis=1))))
    return top1, cosine


def plain(source: Path, calibration: np.ndarray, held_out: np.ndarray, destination: Path):
    """The textbook recipe, step for step what edgeml convert does: load, calibrate + convert (int8 I/O),
    write, validate."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(source)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[None]] for sample in calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    destination.write_bytes(converter.convert())
    return compare_with_keras(model, destination, held_out)


def with_edgeml(source: Path, pool: np.ndarray, held_out: np.ndarray, out: Path):
    from edgeml_converters import GatesFailed, convert

    try:
        manifest = convert(source, out, formats=("tflite",), modes=("int8",), calibration=pool,
                           calibration_samples=CALIBRATION, validate_data=held_out, isolate=False)
    except GatesFailed as failed:
        manifest = failed.manifest
    check = manifest["artifacts"][-1]["validation"]
    assert manifest["calibration"]["samples"] == CALIBRATION, manifest["calibration"]
    return check["top1_agreement"], check["cosine"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import edgeml_runtime

    print_header("int8 TFLite: edgeml convert vs the plain TFLiteConverter recipe, the same steps on the same data")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        pool, held_out = build_model(root)
        calibration = same_samples(pool)
        source = root / "model.keras"
        results, counter = {}, iter(range(1_000_000))

        def step(name, action):
            def timed():
                started = time.perf_counter()
                results[name] = action(next(counter))
                return time.perf_counter() - started
            return timed

        measured = interleaved({
            "plain TFLiteConverter": step("plain", lambda i: plain(source, calibration, held_out,
                                                                    root / f"plain-{i}.int8.tflite")),
            "edgeml convert": step("edgeml", lambda i: with_edgeml(source, pool, held_out, root / f"edgeml-{i}")),
        }, args.rounds)
        plain_path = root / "plain-0.int8.tflite"
        edgeml_path = next(root.glob("edgeml-*/model.int8.tflite"))
        latency = interleaved({
            name: (lambda path=path: edgeml_runtime.benchmark(str(path), runs=200, threads=1).to_dict()
                   ["latency_ms"]["p50"])
            for name, path in (("plain TFLiteConverter", plain_path), ("edgeml convert", edgeml_path))}, 5)

        print(f"16x16x3 CNN, {CALIBRATION} calibration samples (the same ones), {len(held_out)} held-out samples, "
              f"{args.rounds} rounds")
        print(f"{'':24}{'convert s':>10}{'bytes':>9}{'p50 ms':>9}{'top-1':>8}{'cosine':>9}")
        for name, key, path in (("plain TFLiteConverter", "plain", plain_path), ("edgeml convert", "edgeml",
                                                                                  edgeml_path)):
            top1, cosine = results[key]
            print(f"{name:24}{statistics.median(measured[name]):10.2f}{path.stat().st_size:9d}"
                  f"{statistics.median(latency[name]):9.4f}{top1:8.1%}{cosine:9.5f}")
        base, ours = "plain TFLiteConverter", "edgeml convert"
        print(f"{'ratio edgeml/plain':24}{median_ratio(measured[base], measured[ours]):10.2f}"
              f"{edgeml_path.stat().st_size / plain_path.stat().st_size:9.2f}"
              f"{median_ratio(latency[base], latency[ours]):9.2f}")
        same = "the same bytes" if plain_path.read_bytes() == edgeml_path.read_bytes() else "different bytes"
        print(f"the two .tflite files have {same}")


if __name__ == "__main__":
    main()
