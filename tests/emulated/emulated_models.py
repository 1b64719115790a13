"""Tiny models for the emulated-Pi tests, made on the host by the project's own converter: a small
convolutional classifier in fp32 and int8 (full integer, int8 I/O for TFLite; QDQ for ONNX)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

SEED = 11
IMAGE_SHAPE = (12, 12, 1)
CALIBRATION_SAMPLES = 64


def build_keras_model():
    import keras

    keras.utils.set_random_seed(SEED)
    image = keras.Input(IMAGE_SHAPE, name="image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(image)
    x = keras.layers.DepthwiseConv2D(3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(16, activation="relu")(x)
    logits = keras.layers.Dense(5, name="logits")(x)  # no softmax: the int8 ONNX output is then quantized
    return keras.Model(image, logits, name="tiny_cnn")


def calibration_images(count: int = CALIBRATION_SAMPLES) -> np.ndarray:
    return np.random.default_rng(SEED).uniform(-1, 1, size=(count, *IMAGE_SHAPE)).astype(np.float32)


def make_models(directory: Path) -> Dict[str, Path]:
    """Convert the Keras model with the project's converter (edgeml_converters.convert) to fp32 and int8
    TFLite and ONNX in `directory`; returns the artifacts by key ("tflite_int8", ...)."""
    from edgeml_converters import convert

    source = directory / "tiny_cnn.keras"
    build_keras_model().save(source)
    manifest = convert(source, directory / "converted", formats=("tflite", "onnx"), modes=("fp32", "int8"),
                       calibration=calibration_images(), isolate=False)
    paths = {f"{entry['format']}_{entry['quantization']}": directory / "converted" / entry["path"]
             for entry in manifest["artifacts"]}
    assert set(paths) == {"tflite_fp32", "tflite_int8", "onnx_fp32", "onnx_int8"}, sorted(paths)
    return paths


def onnx_output_step(path: Path) -> float:
    """The quantization step (scale) of a QDQ ONNX model's output: the DequantizeLinear that makes it."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    output = graph.output[0].name
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and output in node.output:
            return float(numpy_helper.to_array(initializers[node.input[1]]))
    raise AssertionError(f"{path.name}: its output {output} is not produced by a DequantizeLinear")
