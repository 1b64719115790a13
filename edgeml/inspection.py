"""What is inside a model file: inputs, outputs, quantization, op counts, parameter count and size."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from edgeml_runtime import EdgeMLError, ModelLoadError

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def inspect_model(path: Path) -> dict:
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if path.suffix.lower() in (".tflite", ".onnx", ".ort"):
        report = _runtime_facts(path)
        report.update(_tflite_graph(path) if report["format"] == "tflite" else _onnx_graph(path))
        return report
    if path.suffix.lower() in KERAS_SUFFIXES:
        return _keras_facts(path)
    raise EdgeMLError(f"{path}: edgeml inspect reads .tflite, .onnx, .ort, .keras and .h5 files")


def _runtime_facts(path: Path) -> dict:
    import edgeml_runtime

    model = edgeml_runtime.load(path, threads=1)
    return {
        "model": str(path),
        "bytes": model.model_bytes,
        "format": model.format,
        "quantization": model.quantization,
        "inputs": [spec.to_dict() for spec in model.inputs],
        "outputs": [spec.to_dict() for spec in model.outputs],
    }


def _tflite_graph(path: Path) -> dict:
    """Ops and parameters from the interpreter: constants are op inputs that no op produces."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=path.read_bytes())
    ops = interpreter._get_ops_details()  # the only public-enough way to list ops without the flatbuffer schema
    produced = {index for op in ops for index in op["outputs"]}
    graph_inputs = {detail["index"] for detail in interpreter.get_input_details()}
    constants = {index for op in ops for index in op["inputs"] if index >= 0} - produced - graph_inputs
    shapes = {detail["index"]: detail["shape"] for detail in interpreter.get_tensor_details()}
    parameters = int(sum(int(np.prod(shapes[index])) for index in constants if index in shapes))
    return {"ops": dict(Counter(op["op_name"] for op in ops)), "parameters": parameters}


def _onnx_graph(path: Path) -> dict:
    if path.suffix.lower() == ".ort":
        return {"ops": None, "parameters": None}  # ORT format has no public reader for its graph
    try:
        import onnx
    except ImportError:
        return {"ops": None, "parameters": None}
    graph = onnx.load(str(path), load_external_data=False).graph
    parameters = sum(int(np.prod(tensor.dims)) for tensor in graph.initializer)
    return {"ops": dict(Counter(node.op_type for node in graph.node)), "parameters": parameters}


def _keras_facts(path: Path) -> dict:
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as error:
        raise ModelLoadError(f"{path}: Keras cannot load it safely ({str(error).splitlines()[0]}); "
                             "`edgeml convert` handles Keras 2 files and --unsafe models") from None
    except OSError as error:
        raise ModelLoadError(f"{path}: not a readable Keras file ({error})") from None
    return {
        "model": str(path),
        "bytes": path.stat().st_size,
        "format": "keras",
        "quantization": None,
        "inputs": [{"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype)} for t in model.inputs],
        "outputs": [{"name": t.name, "shape": list(t.shape), "dtype": str(t.dtype)} for t in model.outputs],
        "ops": dict(Counter(type(layer).__name__ for layer in model.layers)),
        "parameters": int(model.count_params()),
    }
