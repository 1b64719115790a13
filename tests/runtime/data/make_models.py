"""Regenerates the tiny models the runtime tests use (needs TensorFlow and tf2onnx; the tests do not).

The files are committed so that tests/runtime runs with only numpy and one backend installed.
Run: python tests/runtime/data/make_models.py [--only oracle|apps]   (--only oracle: just the quantization
oracles; --only apps: just the models the serving and examples tests use without labels.json)

The models without labels.json (apps): `autoencoder_fp32` (.tflite, .onnx): `frames` (None, 640) -> (None, 640),
a dense 640-4-640 autoencoder shaped like MLPerf Tiny's anomaly-detection model (its outputs are not class
scores, and it is 640 wide where the MLP is 8); `image_cnn_fp32.tflite`: `image` (None, 12, 10, 3) raw pixels
0..255 (rescaled inside) -> 3 softmax scores, for the image-folder example.

The quantization oracles (quantize_oracle.tflite / .onnx) hold nothing but the backends' own QUANTIZE and
DEQUANTIZE ops (ONNX: QuantizeLinear / DequantizeLinear, int8 and uint8 only), one pair per entry of
ORACLE_PARAMETERS: input `real_X` (float32) -> `quantized_X`, input `integers_X` -> `dequantized_X` (float32),
shape (1, ORACLE_WIDTH).
The .tflite file is written as a flatbuffer with TensorFlow's schema classes: the converter would fold such
a graph away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
SEED = 7
# name -> (scale, zero point, integer dtype): powers of two and non-powers, zero points on both sides of 0
ORACLE_PARAMETERS = {"a": (0.25, -3, "int8"), "b": (0.1, 7, "int8"), "c": (0.75, 128, "uint8"),
                     "d": (0.0390625, 0, "int16")}
ORACLE_WIDTH = 512


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


def quantize_oracle_tflite() -> bytes:
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    types = {"float32": schema.TensorType.FLOAT32, "int8": schema.TensorType.INT8,
             "uint8": schema.TensorType.UINT8, "int16": schema.TensorType.INT16}

    def tensor(name, dtype, scale=None, zero_point=None):
        made = schema.TensorT()
        made.name, made.shape, made.type, made.buffer = name, np.array([1, ORACLE_WIDTH], np.int32), types[dtype], 0
        if scale is not None:
            made.quantization = schema.QuantizationParametersT()
            made.quantization.scale, made.quantization.zeroPoint = [scale], [zero_point]
        return made

    def operator(code, source, target):
        made = schema.OperatorT()
        made.opcodeIndex, made.inputs, made.outputs = code, [source], [target]
        return made

    codes = []
    for builtin in (schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE):
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        codes.append(code)
    graph = schema.SubGraphT()
    graph.name, graph.tensors, graph.operators, graph.inputs, graph.outputs = "main", [], [], [], []
    for key, (scale, zero_point, dtype) in ORACLE_PARAMETERS.items():
        first = len(graph.tensors)
        graph.tensors += [tensor(f"real_{key}", "float32"), tensor(f"quantized_{key}", dtype, scale, zero_point),
                          tensor(f"integers_{key}", dtype, scale, zero_point), tensor(f"dequantized_{key}", "float32")]
        graph.operators += [operator(0, first, first + 1), operator(1, first + 2, first + 3)]
        graph.inputs += [first, first + 2]
        graph.outputs += [first + 1, first + 3]
    model = schema.ModelT()
    model.version, model.description = 3, "edgeml quantization oracle: QUANTIZE and DEQUANTIZE only"
    model.operatorCodes, model.subgraphs, model.buffers = codes, [graph], [schema.BufferT()]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def quantize_oracle_onnx() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    types = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}
    nodes, inputs, outputs, initializers = [], [], [], []
    for key, (scale, zero_point, dtype) in ORACLE_PARAMETERS.items():
        if dtype not in types:  # int16 needs opset 21, which the onnxruntime of Python 3.9 may not have
            continue
        initializers += [helper.make_tensor(f"scale_{key}", TensorProto.FLOAT, [], [scale]),
                         helper.make_tensor(f"zero_point_{key}", types[dtype], [], [zero_point])]
        nodes += [helper.make_node("QuantizeLinear", [f"real_{key}", f"scale_{key}", f"zero_point_{key}"],
                                   [f"quantized_{key}"]),
                  helper.make_node("DequantizeLinear", [f"integers_{key}", f"scale_{key}", f"zero_point_{key}"],
                                   [f"dequantized_{key}"])]
        inputs += [helper.make_tensor_value_info(f"real_{key}", TensorProto.FLOAT, [1, ORACLE_WIDTH]),
                   helper.make_tensor_value_info(f"integers_{key}", types[dtype], [1, ORACLE_WIDTH])]
        outputs += [helper.make_tensor_value_info(f"quantized_{key}", types[dtype], [1, ORACLE_WIDTH]),
                    helper.make_tensor_value_info(f"dequantized_{key}", TensorProto.FLOAT, [1, ORACLE_WIDTH])]
    graph = helper.make_graph(nodes, "quantize_oracle", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime the runtime supports (>= 1.16)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_app_models():
    import keras

    keras.utils.set_random_seed(SEED)
    frames = keras.Input((640,), name="frames")
    code = keras.layers.Dense(4, activation="relu")(frames)
    autoencoder = keras.Model(frames, keras.layers.Dense(640, name="reconstruction")(code), name="autoencoder")

    image = keras.Input((12, 10, 3), name="image")
    scaled = keras.layers.Rescaling(1 / 255)(image)
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(scaled))
    scores = keras.layers.Dense(3, activation="softmax", name="scores")(features)
    image_cnn = keras.Model(image, scores, name="image_cnn")
    return autoencoder, image_cnn


def write_app_models():
    autoencoder, image_cnn = build_app_models()
    (HERE / "autoencoder_fp32.tflite").write_bytes(to_tflite(autoencoder))
    (HERE / "autoencoder_fp32.onnx").write_bytes(to_onnx(autoencoder))
    (HERE / "image_cnn_fp32.tflite").write_bytes(to_tflite(image_cnn))


def write_oracles():
    (HERE / "quantize_oracle.tflite").write_bytes(quantize_oracle_tflite())
    (HERE / "quantize_oracle.onnx").write_bytes(quantize_oracle_onnx())


def main():
    import sys

    if sys.argv[1:] == ["--only", "apps"]:
        write_app_models()
        return
    write_oracles()
    if sys.argv[1:] == ["--only", "oracle"]:
        return
    write_app_models()
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
