"""A .tflite model's float-I/O twin: the same graph taking and giving float32 where the model takes or gives
8-bit quantized tensors (a QUANTIZE op after its input, a DEQUANTIZE op before each such output), with its
first output multiplied by (s - s) + 1, s the sum of the input: 1 exactly when every input value is finite,
NaN otherwise (or when the sum overflowed, values beyond ~1e37: then the caller checks the values one by one).
So one look at the first output's first value tells whether the input held NaN or an infinity; multiplying
by 1 changes no value, not even the sign of a zero.

Why: an app feeds real values, and on a small model converting them with numpy around the interpreter
costs more than the model itself (four numpy calls, one to three µs each in a loop on a slow CPU, the
finiteness check among them); inside the interpreter the same work is a few more kernels, well under a µs
(benchmarks/runtime_overhead.py). The check rides on the first output because fetching a separate output
costs as much as the numpy check it replaces. LiteRT's QUANTIZE and DEQUANTIZE kernels follow exactly the
rules `edgeml_runtime.quantization` implements (its oracle test), and `LiteRTSession.float_io_twin` checks
the twin against the numpy path on a probe before using it.

Built with the flatbuffer schema module LiteRT ships (`ai_edge_litert.schema_py_generated`, imported only
here); None wherever that is missing, or for a model this does not handle: several subgraphs or inputs,
an input neither float32 nor 8-bit per-tensor quantized, an input that is also an output, and models with
state (variables), which a second interpreter would not share.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["MAX_MODEL_BYTES", "agrees", "float_io_model"]

# Twins are made for small models only: there the conversion matters, and a second interpreter (with its
# own copy of the weights) costs little memory.
MAX_MODEL_BYTES = 4 << 20
_EMPTY_BUFFER = 0  # buffer 0 of every .tflite is the empty one tensors without data refer to
CHECK_NAME = b"edgeml_finite_check"  # names the tensors the twin adds for the check


def float_io_model(model_bytes: bytes) -> Optional[bytes]:
    """The twin's bytes, or None (see the module docstring)."""
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:  # tflite_runtime ships no schema module
        return None
    try:
        model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
        if not _handled(model, schema) or not _make_float_io(model, schema):
            return None
        builder = flatbuffers.Builder(len(model_bytes) + 4096)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    except Exception:  # noqa: BLE001 - a model LiteRT accepted but this reader does not: no twin
        return None
    return bytes(builder.Output())


def _make_float_io(model, schema) -> bool:
    """Rewrite `model` (one `_handled` subgraph) into its twin; False when there is nothing to convert or the
    first output cannot carry the check."""
    graph = model.subgraphs[0]
    (input_index,), outputs = list(graph.inputs), list(graph.outputs)
    replaced = {}
    if graph.tensors[input_index].type != schema.TensorType.FLOAT32:
        replaced[input_index] = float_input = _add_float_tensor(graph, input_index, schema)
        quantize = _operator_code(model, schema, schema.BuiltinOperator.QUANTIZE)
        graph.operators.insert(0, _operator(schema, quantize, [float_input], input_index))
    else:
        float_input = input_index
    for position, index in enumerate(outputs):
        if _is_8bit_per_tensor(graph.tensors[index], schema):
            replaced[index] = outputs[position] = _add_float_tensor(graph, index, schema)
            dequantize = _operator_code(model, schema, schema.BuiltinOperator.DEQUANTIZE)
            graph.operators.append(_operator(schema, dequantize, [index], replaced[index]))
    if not replaced or graph.tensors[outputs[0]].type != schema.TensorType.FLOAT32:
        return False
    first = graph.outputs[0]
    replaced[first] = outputs[0] = _checked(model, graph, schema, float_input, outputs[0])
    graph.inputs, graph.outputs = [float_input], outputs
    for signature in model.signatureDefs or []:
        for entry in (signature.inputs or []) + (signature.outputs or []):
            entry.tensorIndex = replaced.get(entry.tensorIndex, entry.tensorIndex)
    return True


def _handled(model, schema) -> bool:
    """One subgraph, one input (float32 or 8-bit quantized) that is not also an output, no state."""
    if len(model.subgraphs or []) != 1:
        return False
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or graph.inputs[0] in list(graph.outputs):
        return False
    tensor = graph.tensors[graph.inputs[0]]
    if tensor.type != schema.TensorType.FLOAT32 and not _is_8bit_per_tensor(tensor, schema):
        return False
    stateful = {schema.BuiltinOperator.VAR_HANDLE, schema.BuiltinOperator.ASSIGN_VARIABLE,
                schema.BuiltinOperator.READ_VARIABLE}
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes or []]
    return not (any(tensor.isVariable for tensor in graph.tensors) or stateful & set(codes))


def _checked(model, graph, schema, float_input: int, output: int) -> int:
    """`output` * ((s - s) + 1), s the sum of `float_input` over every axis (see the module docstring); returns
    the new output's index. It takes over the output's name."""
    ops = schema.BuiltinOperator
    rank = len(graph.tensors[float_input].shape)
    axes = _constant(model, graph, schema, np.arange(rank, dtype="<i4"), schema.TensorType.INT32, b"/axes")
    one = _constant(model, graph, schema, np.ones((), "<f4"), schema.TensorType.FLOAT32, b"/one")
    total = _append(model, graph, schema, ops.SUM, [float_input, axes], b"/sum", _options(schema, "Reducer"))
    total.builtinOptions.keepDims = False
    zero_or_nan = _append(model, graph, schema, ops.SUB, [total.outputs[0]] * 2, b"/zero", _options(schema, "Sub"))
    factor = _append(model, graph, schema, ops.ADD, [zero_or_nan.outputs[0], one], b"/factor",
                     _options(schema, "Add"))
    product = _append(model, graph, schema, ops.MUL, [output, factor.outputs[0]], b"", _options(schema, "Mul"))
    checked = graph.tensors[product.outputs[0]]
    checked.shape, checked.shapeSignature = graph.tensors[output].shape, graph.tensors[output].shapeSignature
    checked.name, graph.tensors[output].name = graph.tensors[output].name, graph.tensors[output].name + b"/unchecked"
    return product.outputs[0]


def _constant(model, graph, schema, values, tensor_type: int, suffix: bytes) -> int:
    buffer = schema.BufferT()
    buffer.data = np.ascontiguousarray(values).view(np.uint8).reshape(-1)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.buffer, tensor.name = list(values.shape), tensor_type, len(model.buffers) - 1, (
        CHECK_NAME + suffix)
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _append(model, graph, schema, builtin: int, inputs, suffix: bytes, options):
    """An operator at the end of the graph writing a new float32 tensor (a scalar until shaped otherwise)."""
    tensor = schema.TensorT()
    tensor.shape, tensor.type, tensor.buffer, tensor.name = [], schema.TensorType.FLOAT32, _EMPTY_BUFFER, (
        CHECK_NAME + suffix)
    graph.tensors.append(tensor)
    operator = _operator(schema, _operator_code(model, schema, builtin, version=1), inputs, len(graph.tensors) - 1)
    operator.builtinOptionsType, operator.builtinOptions = options
    graph.operators.append(operator)
    return operator


def _options(schema, kind: str):
    """(BuiltinOptions type, its object) for `kind` ("Add", "Mul", ...), defaults: no fused activation."""
    return getattr(schema.BuiltinOptions, kind + "Options"), getattr(schema, kind + "OptionsT")()


def _is_8bit_per_tensor(tensor, schema) -> bool:
    quantization = tensor.quantization
    return (tensor.type in (schema.TensorType.INT8, schema.TensorType.UINT8) and quantization is not None
            and quantization.scale is not None and len(quantization.scale) == 1
            and quantization.zeroPoint is not None and len(quantization.zeroPoint) == 1)


def _add_float_tensor(graph, index: int, schema) -> int:
    """A float32 tensor shaped like tensor `index`, which takes over its name; returns the new index."""
    original = graph.tensors[index]
    twin = schema.TensorT()
    twin.shape, twin.shapeSignature, twin.hasRank = original.shape, original.shapeSignature, original.hasRank
    twin.type, twin.buffer, twin.name = schema.TensorType.FLOAT32, _EMPTY_BUFFER, original.name
    original.name = (original.name or b"") + b"/quantized"
    graph.tensors.append(twin)
    return len(graph.tensors) - 1


def _operator_code(model, schema, builtin: int, version: int = 2) -> int:
    """The index of `builtin`'s operator code in the model, added when missing. `version`: the least one the
    twin's use needs (QUANTIZE and DEQUANTIZE of int8: 2)."""
    for position, code in enumerate(model.operatorCodes or []):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            code.version = max(code.version, version)
            return position
    code = schema.OperatorCodeT()
    code.builtinCode, code.version = builtin, version
    # builtins below 127 are also written to the byte-sized field older readers look at
    code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    model.operatorCodes = list(model.operatorCodes or []) + [code]
    return len(model.operatorCodes) - 1


def _operator(schema, code: int, sources, target: int):
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = code, list(sources), [target]
    return operator


def agrees(session, twin) -> bool:
    """Whether `twin` returns, on probes covering every quantization step of the input (its halfway points and
    their float32 neighbours, values far outside the range), exactly what `session` gives when fed the
    quantized probe and its outputs are dequantized (the float path's results must not depend on the path);
    and refuses a probe holding NaN, +inf or -inf."""
    from edgeml_runtime.quantization import dequantize, quantize

    spec, shape = session.inputs[0], tuple(session._planned_shapes[0])
    for probe in _probes(spec, shape):
        fed = probe if spec.quantization is None else quantize(probe, spec.quantization, spec.numpy_dtype)
        expected, got = session.run_single(fed), twin.run_single(probe)
        if got is None or len(got) != len(expected):
            return False
        for want, have, output in zip(expected, got, session.outputs):
            if output.quantization is not None:
                want = dequantize(want, output.quantization)
            if want.dtype != have.dtype or not np.array_equal(want, have):
                return False
    for bad in (np.nan, np.inf, -np.inf):
        probe = np.zeros(shape, np.float32)
        probe.flat[-1] = bad
        if twin.run_single(probe) is not None:
            return False
    return True


def _probes(spec, shape):
    """float32 arrays of `shape` that together hold the probe values (see agrees)."""
    size = int(np.prod(shape))
    if spec.quantization is None:
        values = np.random.default_rng(0).standard_normal(max(size, 256)).astype(np.float32)
    else:
        info = np.iinfo(spec.numpy_dtype)
        scale, zero_point = np.float32(spec.quantization.scale), int(spec.quantization.zero_point)
        halfway = ((np.arange(int(info.min), int(info.max) + 1) - zero_point + 0.5) * scale).astype(np.float32)
        far = np.array([1e30, -1e30, 1e20, -1e20, 1e10, -1e10], np.float32)  # saturating; their sum stays finite
        values = np.concatenate([halfway, np.nextafter(halfway, np.float32(np.inf)),
                                 np.nextafter(halfway, np.float32(-np.inf)), far])
    for start in range(0, len(values), size):
        chunk = values[start:start + size]
        yield np.resize(chunk, shape).astype(np.float32)  # the last chunk repeats itself to fill the shape
