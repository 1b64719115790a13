"""Regenerates the tiny models the runtime tests use (needs TensorFlow and tf2onnx; the tests do not).

The files are committed so that tests/runtime runs with only numpy and one backend installed.
Run: python tests/runtime/data/make_models.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SEED = 7


def build_models():
    import keras

    keras.utils.set_random_seed(SEED)
    features = keras.Input((8,), name="features")
    hidden = keras.layers.Dense(16, activation="relu")(features)
    probabilities = keras.layers.Dense(4, activation="softmax", name="probabilities")(hidden)
    mlp = keras.Model(features, probabilities, name="mlp")

    image = keras.Input((4, 4, 1), name="image")
    meta = keras.Input((3,), name="meta")
    flat = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, padding="same")(image))
    joined = keras.layers.Concatenate()([flat, meta])
    score = keras.layers.Dense(1, name="score")(joined)
    logits = keras.layers.Dense(3, name="logits")(joined)
    two_io = keras.Model([image, meta], [score, logits], name="two_io")
    return mlp, two_io


def to_tflite(model, *, int8_calibration=None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8_calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([sample[None]] for sample in int8_calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def to_onnx(model) -> bytes:
    import tensorflow as tf
    import tf2onnx

    signature = [tf.TensorSpec((None,) + tuple(t.shape[1:]), t.dtype, name=t.name) for t in model.inputs]
    function = tf.function(lambda *args: model(list(args) if len(args) > 1 else args[0]))
    proto, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=17)
    return proto.SerializeToString()


def main():
    mlp, two_io = build_models()
    rng = np.random.default_rng(SEED)
    calibration = rng.normal(size=(200, 8)).astype(np.float32)
    inputs = rng.normal(size=(5, 8)).astype(np.float32)
    image = rng.normal(size=(2, 4, 4, 1)).astype(np.float32)
    meta = rng.normal(size=(2, 3)).astype(np.float32)

    (HERE / "mlp_fp32.tflite").write_bytes(to_tflite(mlp))
    (HERE / "mlp_int8.tflite").write_bytes(to_tflite(mlp, int8_calibration=calibration))
    (HERE / "mlp_fp32.onnx").write_bytes(to_onnx(mlp))
    (HERE / "two_io_fp32.tflite").write_bytes(to_tflite(two_io))
    (HERE / "two_io_fp32.onnx").write_bytes(to_onnx(two_io))
    score, logits = two_io([image, meta])
    np.savez(
        HERE / "reference.npz",
        mlp_inputs=inputs,
        mlp_outputs=np.asarray(mlp(inputs)),
        two_io_image=image,
        two_io_meta=meta,
        two_io_score=np.asarray(score),
        two_io_logits=np.asarray(logits),
    )


if __name__ == "__main__":
    main()
