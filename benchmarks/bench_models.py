"""Models for the benchmark scripts, built once with TensorFlow and cached under ~/.cache/edgeml/bench-models.

- tiny: the runtime tests' 8->16->4 MLP (committed in tests/runtime/data)
- mobilenet: Keras MobileNetV2 (alpha 1.0, 224x224, random weights: latency does not depend on them)
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY = {"tflite": ROOT / "tests/runtime/data/mlp_fp32.tflite", "onnx": ROOT / "tests/runtime/data/mlp_fp32.onnx"}
CACHE = Path(os.environ.get("EDGEML_CACHE", Path.home() / ".cache" / "edgeml")) / "bench-models"


def mobilenet() -> dict:
    """Paths of MobileNetV2 as .tflite and .onnx (fp32), converted on first use."""
    paths = {"tflite": CACHE / "mobilenet_v2.tflite", "onnx": CACHE / "mobilenet_v2.onnx"}
    if all(path.exists() for path in paths.values()):
        return paths
    import keras
    import tensorflow as tf
    import tf2onnx

    CACHE.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    paths["tflite"].write_bytes(tflite)
    signature = [tf.TensorSpec((None, 224, 224, 3), tf.float32, name="image")]
    proto, _ = tf2onnx.convert.from_function(tf.function(lambda x: model(x)), input_signature=signature, opset=17)
    paths["onnx"].write_bytes(proto.SerializeToString())
    return paths
