"""Small full-integer (int8) .tflite models for the microcontroller tests (TFLM export, fit verdicts).

    models = build_int8_models(tmp_dir)    # TensorFlow imported inside; a few seconds on 2 cores
    models.cnn, models.mlp                 # int8 CNN (16x16x1 -> 4 classes) and MLP (20 -> 4), int8 I/O
    models.big_conv                        # 96x96x3 conv: a ~320 KB arena, more than a 256 KB board holds
    models.gelu_mlp                        # int8, but GELU has no TFLM kernel
    models.dead_softmax                    # int8; a zero-weight layer feeds a softmax whose check makes TFLM abort
    models.fp32_mlp                        # the MLP unquantized: not full-integer
    models.samples["cnn"]                  # real-valued inputs for each, batch first

Weights are random (seeded): what is tested is the conversion and the memory, not accuracy. Standard library
only at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

__all__ = ["build_int8_models"]


def build_int8_models(directory: Path) -> SimpleNamespace:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    layers = keras.layers
    specs = {
        "cnn": (keras.Sequential([
            keras.Input((16, 16, 1)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.DepthwiseConv2D(3, activation="relu"),
            layers.Conv2D(16, 1, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(4, activation="softmax"),
        ]), rng.uniform(0.0, 1.0, size=(64, 16, 16, 1))),
        "mlp": (keras.Sequential([
            keras.Input((20,)),
            layers.Dense(32, activation="relu"),
            layers.Dense(16, activation="relu"),
            layers.Dense(4, activation="softmax"),
        ]), rng.normal(size=(64, 20))),
        "big_conv": (keras.Sequential([
            keras.Input((96, 96, 3)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(4),
            layers.GlobalAveragePooling2D(),
            layers.Dense(2, activation="softmax"),
        ]), rng.uniform(0.0, 1.0, size=(8, 96, 96, 3))),
        "gelu_mlp": (keras.Sequential([
            keras.Input((20,)),
            layers.Dense(16),
            layers.Activation("gelu"),
            layers.Dense(4),
        ]), rng.normal(size=(64, 20))),
        # All-zero weights: the softmax's calibrated input is constant, its scale ~1e-8, and TFLM's int8 softmax
        # fails a check on it and aborts the process (LiteRT runs the model).
        "dead_softmax": (keras.Sequential([
            keras.Input((8,)),
            layers.Dense(4, kernel_initializer="zeros"),
            layers.Softmax(),
        ]), rng.normal(size=(16, 8))),
    }
    paths, samples = {}, {}
    for name, (model, data) in specs.items():
        data = data.astype("float32")
        paths[name] = directory / f"{name}.int8.tflite"
        paths[name].write_bytes(_convert(model, data, int8=True))
        samples[name] = data[:24]
    paths["fp32_mlp"] = directory / "mlp.fp32.tflite"
    paths["fp32_mlp"].write_bytes(_convert(specs["mlp"][0], None, int8=False))
    return SimpleNamespace(**paths, samples=samples, directory=directory)


def _convert(model, calibration, *, int8: bool) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:  # full integer: int8 activations, weights and I/O, calibrated on `calibration`
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None]] for sample in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()
