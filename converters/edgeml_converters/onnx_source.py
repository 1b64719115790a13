"""ONNX models as conversion sources (most models for small devices come from PyTorch as .onnx files).

    source = load_onnx_source(Path("model.onnx"))   # a SourceModel, kind "onnx"
    source.onnx_path                                 # the checked, shape-inferred fp32 model (weights inline)
    source.predict({"input": x})                     # ONNX Runtime (CPU, fp32): the reference for validation
    source.onnx_facts["quantized"]                  # "int8" / "dynamic" when the graph is quantized already

The file is untrusted: external data (weights in files beside the model) is checked with the runtime's own rules
(`edgeml_runtime.backends.onnx_external`: relative paths that stay inside the model's folder, sizes that fit)
before the `onnx` package or ONNX Runtime reads any of it; then `onnx.checker`, shape inference, and an ONNX Runtime
session, which is what finds operators nobody implements. Every failure is one `ModelLoadError` line.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from edgeml_runtime import ModelLoadError
from edgeml_runtime.errors import first_line as _first_line

from edgeml_converters.loading import SourceModel, TensorInfo
from edgeml_converters.output_dir import make_scratch_dir

__all__ = ["MIN_QUANTIZE_OPSET", "QUANTIZED_OPS", "external_files", "input_layouts", "load_onnx_source", "onnx_facts",
           "quantization_of", "read_checked_model", "upgrade_opset"]

# Operators only a quantized graph has: QDQ pairs (static int8), QLinear* kernels (QOperator format) and the
# integer kernels of dynamic quantization.
STATIC_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QLinearAdd",
                        "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearConcat",
                        "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "QGemm"})
DYNAMIC_OPS = frozenset({"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"})
QUANTIZED_OPS = STATIC_OPS | DYNAMIC_OPS
MIN_QUANTIZE_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (what static int8 writes) needs opset 13
MAX_INLINE_BYTES = 2 * 1024 ** 3 - 1  # one protobuf holds at most 2 GB: larger models need external data
# Layout letters of a PyTorch tensor by rank (what an ONNX export from PyTorch has): a permutation of the axes
# (`onnx2tf_route`'s perms) spells the converted model's layout, e.g. (0, 2, 3, 1) -> NHWC.
TORCH_LAYOUTS = {3: "NCL", 4: "NCHW", 5: "NCDHW"}
ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
               10: "float16", 11: "float64", 12: "uint32", 13: "uint64"}


def load_onnx_source(path: Path) -> SourceModel:
    """The ONNX model at `path`, checked and runnable; its fp32 copy (weights inline) in a scratch folder that
    `cleanup()` removes."""
    import onnx
    import onnxruntime

    model, external = read_checked_model(path)
    facts = onnx_facts(model, external)
    scratch = make_scratch_dir("edgeml-onnx-source-")
    try:
        checked = scratch / "source.fp32.onnx"
        checked.write_bytes(model.SerializeToString())
        session = _session(checked, path)
        inputs, outputs = _tensor_infos(session, model)
    except BaseException:
        from edgeml_converters.output_dir import remove_scratch_dir

        remove_scratch_dir(scratch)
        raise
    output_names = [info.name for info in outputs]

    def predict(feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        values = session.run(output_names, {name: np.asarray(value) for name, value in feeds.items()})
        return dict(zip(output_names, values))

    loader = f"onnx {onnx.__version__} / onnxruntime {onnxruntime.__version__}"
    return SourceModel(path, "onnx", loader, inputs, outputs, None, predict, _notes(facts), temporary_dir=scratch,
                       keep_alive=session, onnx_path=checked, onnx_facts=facts)


# --- reading and checking -----------------------------------------------------------------------------------------


def read_checked_model(path: Path):
    """(ModelProto, external data files): the model at `path` with its external data loaded (after the runtime's
    inside-the-folder checks), passed by `onnx.checker` and shape-inferred. ModelLoadError (one line) for anything
    wrong."""
    import onnx
    from edgeml_runtime.backends import onnx_external

    data = path.read_bytes()
    real_folder = Path(os.path.realpath(path)).parent
    try:
        external = external_files(data)
        if external:
            onnx_external.check_external_data(data, real_folder)
    except ModelLoadError as error:
        raise ModelLoadError(f"{path.name}: {error}") from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception as error:  # google.protobuf DecodeError and friends
        raise ModelLoadError(f"{path.name}: not a valid ONNX model (the protobuf does not parse: "
                             f"{_first_line(error)}); the file is corrupt or truncated, export it again") from None
    if not model.HasField("graph") or not model.opset_import:
        raise ModelLoadError(f"{path.name}: not an ONNX model (no graph or no opset); the file is corrupt, truncated "
                             "or another kind of protobuf")
    if external:
        from onnx.external_data_helper import load_external_data_for_model

        try:  # every location was checked above: relative, inside the real folder, sizes within the files
            load_external_data_for_model(model, str(real_folder))
        except Exception as error:
            raise ModelLoadError(f"{path.name}: cannot read its external data: {_first_line(error)}") from None
    if model.ByteSize() > MAX_INLINE_BYTES:
        raise ModelLoadError(f"{path.name}: the model is larger than 2 GB; too large for edgeml's devices")
    try:
        onnx.checker.check_model(model)
    except Exception as error:  # onnx.checker.ValidationError, and C++ errors for damaged fields
        raise ModelLoadError(f"{path.name}: not a valid ONNX model: {_first_line(error)}; export it again "
                             "(torch.onnx.export checks the same)") from None
    try:
        return onnx.shape_inference.infer_shapes(model, check_type=True), external
    except Exception as error:  # inconsistent types or shapes the checker does not see
        raise ModelLoadError(f"{path.name}: ONNX shape inference fails: {_first_line(error)}") from None


def _session(model_path: Path, shown: Path):
    """An fp32 ONNX Runtime session on the CPU; an operator it lacks is named in the error."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # our error says it; ORT would log it again
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # ORT prints an "EP Error" banner on failures
            return onnxruntime.InferenceSession(str(model_path), sess_options=options,
                                                providers=["CPUExecutionProvider"])
    except Exception as error:
        raise ModelLoadError(f"{shown.name}: {_runtime_refusal(error)}") from None


def _runtime_refusal(error: Exception) -> str:
    text = " ".join(str(error).split())
    unknown = re.search(r"(?:([\w.]+):)?(\w+)\((-?\d+)\) is not a registered function/op", text)
    if unknown:
        domain = f" (domain {unknown.group(1)})" if unknown.group(1) else ""
        return (f"ONNX Runtime has no operator {unknown.group(2)}{domain}, so the model cannot run or be validated "
                "here; export it with standard ONNX operators (or register the custom op's library)")
    missing = re.search(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'", text)
    if missing:
        return (f"ONNX Runtime has no CPU kernel for operator {missing.group(1)} (opset {missing.group(2)}, node "
                f"'{missing.group(3)}') with these input types; export with another opset or dtype")
    return f"ONNX Runtime cannot load the model: {_first_line(error)}"


def _tensor_infos(session, model) -> Tuple[List[TensorInfo], List[TensorInfo]]:
    """Inputs and outputs as ONNX Runtime sees them (initializers that are also graph inputs left out), with None
    for symbolic or unknown dimensions."""
    def info(node) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (node.shape or ()))
        dtype = _ORT_DTYPES.get(node.type, node.type)
        return TensorInfo(node.name, shape, dtype)

    return [info(node) for node in session.get_inputs()], [info(node) for node in session.get_outputs()]


_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(int32)": "int32",
               "tensor(int64)": "int64", "tensor(bool)": "bool"}


# --- facts about the graph (also for `edgeml inspect`) -------------------------------------------------------------


def onnx_facts(model, external: Optional[List[str]] = None) -> dict:
    """Opsets, symbolic dimensions by input/output, op histogram, quantization, producer, external data files."""
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    ops = Counter(node.op_type for node in graph.node)
    return {
        "opset": {entry.domain or "ai.onnx": int(entry.version) for entry in model.opset_import},
        "ir_version": int(model.ir_version),
        "producer": " ".join(part for part in (model.producer_name, model.producer_version) if part) or None,
        "dynamic_dims": {**_symbolic(value for value in graph.input if value.name not in initializers),
                         **_symbolic(graph.output)},
        "ops": dict(ops),
        "quantized": quantization_of(ops),
        "external_data": list(external or []),
    }


def quantization_of(ops) -> Optional[str]:
    """From the op types: 'int8' (QDQ or QLinear*), 'dynamic' (integer kernels with on-the-fly activation
    quantization), or None."""
    names = set(ops)
    if names & STATIC_OPS:
        return "int8"
    if names & DYNAMIC_OPS:
        return "dynamic"
    return None


def _symbolic(values) -> Dict[str, Dict[str, str]]:
    """{tensor: {axis: name}} for dimensions that are symbolic ('N', 'batch') or unknown ('?')."""
    found: Dict[str, Dict[str, str]] = {}
    for value in values:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else []
        for axis, dim in enumerate(dims):
            if not dim.HasField("dim_value"):
                found.setdefault(value.name, {})[str(axis)] = dim.dim_param or "?"
    return found


def external_files(data: bytes) -> List[str]:
    """The files a serialized model reads external data from, in order of first use (read from the protobuf by
    the runtime's own reader, without loading anything)."""
    from edgeml_runtime.backends import onnx_external

    if not onnx_external.may_have_external_data(data):
        return []
    files: List[str] = []
    for tensor in onnx_external.external_tensors(data):
        location = tensor.entry("location")
        if location and location not in files:
            files.append(location)
    return files


def _notes(facts: dict) -> List[str]:
    opsets = ", ".join(f"{domain} {version}" for domain, version in facts["opset"].items())
    notes = [f"ONNX opset {opsets}" + (f", produced by {facts['producer']}" if facts["producer"] else "")]
    if facts["dynamic_dims"]:
        described = "; ".join(f"{name} axis {', '.join(f'{axis}={label}' for axis, label in axes.items())}"
                              for name, axes in facts["dynamic_dims"].items())
        notes.append(f"dynamic dimensions: {described}")
    if facts["external_data"]:
        notes.append(f"weights read from external data {', '.join(facts['external_data'])} (inside the model's "
                     "folder); the artifacts hold them inline")
    if facts["quantized"]:
        notes.append(f"the model is already quantized ({facts['quantized']}: "
                     f"{', '.join(sorted(set(facts['ops']) & QUANTIZED_OPS))}); it is copied as is, not quantized "
                     "again")
    return notes


def upgrade_opset(path: Path, opset: int) -> None:
    """Rewrite the model at `path` to ONNX opset `opset` (onnx's version converter), in place."""
    import onnx
    from onnx import version_converter

    from edgeml_converters.errors import ConversionError

    try:
        upgraded = version_converter.convert_version(onnx.load(str(path)), opset)
        onnx.checker.check_model(upgraded)
    except Exception as error:  # the converter raises RuntimeError/ValidationError for ops it cannot adapt
        raise ConversionError(f"cannot move the model to ONNX opset {opset}, which int8 quantization needs: "
                              f"{_first_line(error)}; export it with opset >= {opset}") from None
    onnx.save(upgraded, str(path))


def input_layouts(inputs, perms: Optional[Dict[str, Optional[Tuple[int, ...]]]] = None) -> Dict[str, str]:
    """The layout of each image-like input (rank 3 to 5) as PyTorch lays it out (NCHW...), or after `perms`
    (a perm p: converted = original.transpose(p)): e.g. {"image": "NHWC"}. Other inputs are left out."""
    layouts = {}
    for info in inputs:
        letters = TORCH_LAYOUTS.get(len(info.shape))
        if letters is None:
            continue
        perm = (perms or {}).get(info.name)
        layouts[info.name] = "".join(letters[axis] for axis in perm) if perm else letters
    return layouts
