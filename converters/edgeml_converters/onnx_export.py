"""SavedModel -> .onnx with tf2onnx, the fp16 variant, and the .ort form for ONNX Runtime Mobile.

tf2onnx reads the SavedModel's signature (not `from_keras`, which fails on Keras 3 models) and renames
the graph's tensors to the signature's keys, so the ONNX inputs/outputs carry the model's own names.
"""

from __future__ import annotations

from pathlib import Path

from edgeml_runtime.errors import first_line as _first_line

from edgeml_converters.errors import ConversionError
from edgeml_converters.tensorflow_env import import_tensorflow

__all__ = ["DEFAULT_OPSET", "export_onnx", "to_fp16", "to_ort"]

# Opset 17: run by every ONNX Runtime since 1.13 (2022, incl. Mobile builds still on devices), and
# enough for per-channel QDQ quantization (needs >= 13) and LayerNormalization.
DEFAULT_OPSET = 17


def export_onnx(saved_model_dir: Path, signature_key: str, destination: Path, *, opset=None,
                frozen_graph=None) -> int:
    """Write the fp32 ONNX model to `destination`; returns the opset used.

    tf2onnx reads the SavedModel's 'serve' MetaGraph itself, unless `frozen_graph` is given: the source
    loader's frozen TF1 graph for SavedModels `tf.saved_model.load` (which tf2onnx's reader uses) rejects.
    """
    tf = import_tensorflow()
    from tf2onnx import convert, tf_loader

    opset = opset or DEFAULT_OPSET
    try:
        if frozen_graph is not None:
            graph_def, inputs, outputs, tensors_to_rename = frozen_graph()
        else:
            graph_def, inputs, outputs, tensors_to_rename = tf_loader.from_saved_model(
                str(saved_model_dir), None, None, tag=[tf.saved_model.SERVING], signatures=[signature_key],
                return_tensors_to_rename=True,
            )
        model, _ = convert.from_graph_def(
            graph_def, input_names=inputs, output_names=outputs, opset=opset, tensors_to_rename=tensors_to_rename
        )
    except Exception as error:  # tf2onnx raises ValueError/KeyError/RuntimeError for unsupported graphs
        raise ConversionError(f"ONNX conversion (tf2onnx, opset {opset}) failed: {_first_line(error)}") from None
    _check_converted(model, opset)
    destination.write_bytes(model.SerializeToString())
    return opset


def _check_converted(model, opset: int) -> None:
    """tf2onnx keeps going past ops it cannot map (leaving TF ops in the graph): refuse such a model."""
    import onnx

    unmapped = sorted({node.op_type for node in model.graph.node if node.domain not in ("", "ai.onnx", "ai.onnx.ml")})
    if unmapped:
        raise ConversionError(f"ONNX opset {opset} has no mapping for TensorFlow op(s) {', '.join(unmapped)}; "
                              "try a newer --opset or replace those ops")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ConversionError(f"tf2onnx produced an invalid ONNX model: {_first_line(error)}") from None


def to_fp16(source: Path, destination: Path) -> None:
    """Weights and activations in float16; inputs and outputs stay float32 so callers feed the same data."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(destination))


def to_ort(source: Path, destination: Path) -> None:
    """The ONNX Runtime Mobile (.ort) form, optimized as onnxruntime's convert_onnx_models_to_ort does
    ("fixed" style), leaving out the x86-only NCHWc layout so the file also runs on ARM."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(destination)
    options.add_session_config_entry("session.save_model_format", "ORT")
    options.log_severity_level = 3
    try:
        onnxruntime.InferenceSession(
            str(source), sess_options=options, providers=["CPUExecutionProvider"],
            disabled_optimizers=["NchwcTransformer"],
        )
    except Exception as error:
        raise ConversionError(f"ONNX -> ORT conversion failed: {_first_line(error)}") from None
