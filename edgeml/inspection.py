"""What is inside a model file: inputs, outputs, quantization, op counts, parameter count and size."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np
from edgeml_runtime import EdgeMLError, ModelLoadError, formats

from edgeml.console import format_size

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")  # .hdf5 is accepted, not advertised
# Plumbing a SavedModel's functions are made of: left out of its op counts.
SAVED_MODEL_PLUMBING = frozenset({"Placeholder", "Identity", "IdentityN", "NoOp", "Const", "ReadVariableOp",
                                  "VarHandleOp", "StatefulPartitionedCall", "PartitionedCall", "_Arg", "_Retval"})


def inspect_model(path: Path, *, unsafe: bool = False) -> dict:
    """Facts about a converted model (.tflite/.onnx/.ort) or a source `edgeml convert` reads (.keras, Keras 2
    .h5, SavedModel directory, .onnx). `quantization` is what the weights and activations are stored as, `io_dtype`
    what the model takes: a QDQ ONNX model is int8 with float32 I/O. For .onnx also `onnx` (opsets, producer,
    external data files) and `dynamic_dims` ({tensor: {axis: symbolic name}})."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if path.is_file() and formats.format_of_path(path):
        return _runtime_facts(path)
    if path.is_dir() or path.suffix.lower() in KERAS_SUFFIXES:
        return _source_facts(path, unsafe)
    readable = ", ".join((*formats.MODEL_SUFFIXES, *KERAS_SUFFIXES[:-2]))
    raise EdgeMLError(f"{path}: edgeml inspect reads {readable}, {KERAS_SUFFIXES[-2]} files and SavedModel "
                      "directories")


def _runtime_facts(path: Path) -> dict:
    """Specs from the runtime; the graph from its backend, or from the onnx package for .onnx files."""
    import edgeml_runtime

    model = edgeml_runtime.load(path, threads=1)
    report = {
        "model": str(path),
        "bytes": model.model_bytes,
        "format": model.format,
        "quantization": model_quantization(path, model.format) or model.quantization,
        "io_dtype": model.inputs[0].dtype if model.inputs else None,
        "inputs": [spec.to_dict() for spec in model.inputs],
        "outputs": [spec.to_dict() for spec in model.outputs],
    }
    report.update(_onnx_graph(path) if model.format == "onnx" else model.graph())
    return report


def model_quantization(path: Path, fmt: Optional[str] = None) -> Optional[str]:
    """How a converted model stores weights and activations, read from its graph: 'int8' (also with float
    I/O, e.g. ONNX QDQ), 'uint8', 'int16x8', 'dynamic' (int8 weights, float activations), 'fp16', or None
    (float32, or not readable here)."""
    fmt = fmt or formats.format_of_path(path)
    try:
        if fmt == "onnx" and Path(path).suffix.lower() == ".onnx":
            return _onnx_quantization(path)
        if fmt == "tflite":
            return _tflite_quantization(path)
    except (ImportError, OSError, ValueError, RuntimeError):
        return None
    return None


def _onnx_quantization(path: Path) -> Optional[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    ops = {node.op_type for node in graph.node}
    stored = {onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).name for tensor in graph.initializer}
    if ops & {"QuantizeLinear", "QLinearConv", "QLinearMatMul"}:
        for name in ("int16", "uint8", "int8"):
            if name in stored:
                return "int16x8" if name == "int16" else name
        return "int8"
    if ops & {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"}:
        return "dynamic"
    return "fp16" if "float16" in stored else None


def _tflite_quantization(path: Path) -> Optional[str]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from tflite_runtime.interpreter import Interpreter

    interpreter = Interpreter(model_content=Path(path).read_bytes())  # never allocated: no delegate, no log line
    ops = interpreter._get_ops_details()
    produced = {index for op in ops for index in op["outputs"]}
    dtypes = {detail["index"]: np.dtype(detail["dtype"]).name for detail in interpreter.get_tensor_details()}
    activations = {dtypes[index] for index in produced if index in dtypes}
    constants = {dtypes[index] for op in ops for index in op["inputs"] if index >= 0 and index not in produced
                 and index in dtypes}
    if "int16" in activations and "int8" in constants:
        return "int16x8"
    for name in ("int8", "uint8"):
        if name in activations:
            return name
    if "int8" in constants:
        return "dynamic"
    return "fp16" if "float16" in constants else None


def _onnx_graph(path: Path) -> dict:
    """Op counts and parameters; with the converters installed also the opsets, producer, symbolic dimensions and
    external data files (`onnx`, `dynamic_dims`, `notes`). The runtime has loaded the model already, so its
    external data was checked to stay inside its folder."""
    if path.suffix.lower() == ".ort":
        return {"ops": None, "parameters": None}  # ORT format has no public reader for its graph
    try:
        import onnx
    except ImportError:
        return {"ops": None, "parameters": None}
    data = path.read_bytes()
    model = onnx.load_model_from_string(data)  # external data stays unread: only its tensors' shapes are counted
    graph = model.graph
    parameters = sum(int(np.prod(tensor.dims)) for tensor in graph.initializer)
    report = {"ops": dict(Counter(node.op_type for node in graph.node)), "parameters": parameters}
    try:
        from edgeml_converters.onnx_source import external_files, onnx_facts
    except ImportError:
        return report
    facts = onnx_facts(model, external_files(data))
    report["onnx"] = {key: facts[key] for key in ("opset", "ir_version", "producer", "external_data")}
    report["dynamic_dims"] = facts["dynamic_dims"]
    report["notes"] = _onnx_notes(facts)
    return report


def _onnx_notes(facts: dict) -> list:
    """What the table leaves out (it shows the symbolic dimensions by name)."""
    opsets = ", ".join(f"{domain} {version}" for domain, version in facts["opset"].items())
    notes = [f"opset {opsets}; IR version {facts['ir_version']}"
             + (f"; produced by {facts['producer']}" if facts["producer"] else "")]
    if facts["external_data"]:
        notes.append(f"weights in external data: {', '.join(facts['external_data'])}")
    return notes


def _source_facts(path: Path, unsafe: bool) -> dict:
    """A model `edgeml convert` reads, loaded by the converters' own loader (Keras 3, then tf_keras for Keras 2
    .h5 files; SavedModels through tf.saved_model or the TF1 loader), so inspect reads what convert reads."""
    try:
        from edgeml_converters import loading
    except ImportError:
        raise EdgeMLError(f"inspecting {path.name} needs TensorFlow: pip install 'edgeml[converters]'") from None
    kind = loading.detect_kind(path)
    if kind == "saved_model":
        return _saved_model_facts(path, loading)
    model, loader, notes = loading.load_keras_model(path, kind, unsafe=unsafe)
    return {
        "model": str(path),
        "bytes": path.stat().st_size,
        "format": "keras" if kind == "keras" else "h5",
        "loader": loader,
        "quantization": None,
        "io_dtype": _dtype_name(model.inputs[0].dtype) if model.inputs else None,
        "inputs": [_keras_tensor(t) for t in model.inputs],
        "outputs": [_keras_tensor(t, name) for t, name in zip(model.outputs, _output_names(model))],
        "ops": dict(Counter(type(layer).__name__ for layer in model.layers)),
        "parameters": int(model.count_params()),
        "notes": notes,
    }


def _saved_model_facts(path: Path, loading) -> dict:
    source = loading.load_source(path)
    try:
        ops, parameters = _saved_model_graph(source)
        return {
            "model": str(path),
            "bytes": sum(item.stat().st_size for item in path.rglob("*") if item.is_file()),
            "format": "saved_model",
            "loader": source.loader,
            "quantization": None,
            "io_dtype": source.inputs[0].dtype if source.inputs else None,
            "inputs": [_source_tensor(info) for info in source.inputs],
            "outputs": [_source_tensor(info) for info in source.outputs],
            "ops": ops,
            "parameters": parameters,
            "signature": source.signature_key,
            "notes": list(source.notes),
        }
    finally:
        source.cleanup()


def _saved_model_graph(source) -> tuple:
    """(op counts of the serving signature, parameter count) of a loaded SavedModel; (None, None) where the
    loader does not expose them."""
    loaded = source.keep_alive
    if source.frozen_graph is not None:  # TF1: a Session's graph
        graph_def, *_ = source.frozen_graph()
        nodes = list(graph_def.node)
        parameters = sum(int(np.prod([d.size for d in node.attr["value"].tensor.tensor_shape.dim]))
                         for node in nodes if node.op == "Const" and node.attr["value"].tensor.dtype == 1)
    else:
        signature = loaded.signatures[source.signature_key]
        graph_def = signature.graph.as_graph_def()
        nodes = [*graph_def.node, *(node for function in graph_def.library.function for node in function.node_def)]
        variables = list(getattr(signature, "variables", ()) or getattr(loaded, "variables", ()))
        parameters = sum(int(np.prod(variable.shape)) for variable in variables)
    ops = Counter(node.op for node in nodes if node.op not in SAVED_MODEL_PLUMBING)
    return dict(ops), int(parameters)


def _output_names(model) -> list:
    """The names the layers give the outputs (a tf_keras tensor is called e.g. 'dense/BiasAdd')."""
    names = list(getattr(model, "output_names", None) or [])
    return names if len(names) == len(model.outputs) else [None] * len(model.outputs)


def _keras_tensor(tensor, name: Optional[str] = None) -> dict:
    return {"name": name or str(tensor.name).split(":")[0],
            "shape": [None if d is None else int(d) for d in tensor.shape], "dtype": _dtype_name(tensor.dtype)}


def _source_tensor(info) -> dict:
    return {"name": info.name, "shape": list(info.shape), "dtype": info.dtype}


def _dtype_name(dtype) -> str:
    return getattr(dtype, "name", None) or str(dtype)


# ---------------------------------------------------------------------------------------------------------------
# Does it fit? `edgeml inspect MODEL --device PROFILE`

# TFLM's code in flash: an estimate, stated wherever it is used. Basis: TFLM's documentation gives 16 KiB for
# the core runtime on a Cortex-M3 (and 22 KiB with the operators of its keyword-spotting example); each
# operator kernel adds to that, the convolution, fully-connected, LSTM/SVDF and matmul kernels most, as their
# optimized (CMSIS-NN, ESP-NN) variants carry several code paths.
TFLM_CORE_CODE_BYTES = 16 * 1024
TFLM_KERNEL_CODE_BYTES = 4 * 1024
TFLM_HEAVY_KERNEL_CODE_BYTES = 12 * 1024
HEAVY_KERNELS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL",
                           "SVDF", "UNIDIRECTIONAL_SEQUENCE_LSTM"})
CODE_BASIS = (f"estimate: TFLM's documented {TFLM_CORE_CODE_BYTES // 1024} KiB core runtime + "
              f"{TFLM_KERNEL_CODE_BYTES // 1024} KiB per operator kernel, {TFLM_HEAVY_KERNEL_CODE_BYTES // 1024} KiB "
              "for convolution, fully-connected, matmul, SVDF and LSTM kernels; your firmware's linker map has "
              "the real figure")
RAM_BASIS = ("measured: kTensorArenaSize as `edgeml convert --to tflm` writes it (TFLM's allocator on this "
             "machine + margin) + one application-side buffer per input and output (TFLM's own input and output "
             "tensors are inside the arena)")
LINUX_RAM_BASIS = ("measured: peak resident memory of this process while edgeml_runtime loads the model and "
                   "runs it {runs} times on this machine ({machine}): Python, numpy and the runtime included")
# Less than this fraction left free is reported as tight: the application's stack, heap and drivers share it.
TIGHT_FRACTION = 0.10


def device_fit(path: Path, report: dict, profile) -> dict:
    """Whether the model at `path` (its `inspect_model` report) fits the device `profile`, with the figures.

    Microcontrollers: the TFLM arena + I/O buffers against RAM (the arena also against the largest block of
    RAM), the model + TFLM's code (an estimate) against flash. Linux boards: the measured peak memory of
    edgeml_runtime running the model against the board's RAM."""
    if report["format"] not in ("tflite", "onnx"):
        raise EdgeMLError(f"--device checks converted models (.tflite, .onnx, .ort); convert {path.name} first: "
                          f"edgeml convert {path}")
    return _mcu_fit(path, report, profile) if profile.is_mcu else _linux_fit(path, report, profile)


def _mcu_fit(path: Path, report: dict, profile) -> dict:
    mcu = profile.mcu
    if report["format"] != "tflite":
        raise EdgeMLError(f"{profile.name} is a microcontroller: it runs .tflite models through TensorFlow Lite "
                          f"Micro, not {report['format']}; convert with edgeml convert MODEL --int8 --to tflm")
    try:
        from edgeml_converters import tflm
        from edgeml_converters.errors import ConversionError
    except ImportError:
        from edgeml_runtime import BackendNotInstalled

        raise BackendNotInstalled("a microcontroller fit check measures the arena with TensorFlow Lite Micro: "
                                  "pip install 'edgeml-converters[tflm]'") from None
    data = path.read_bytes()
    facts = tflm.read_model(data)
    problems, notes = [], []
    try:
        tflm.resolver_methods(facts.ops)
        measured = tflm.measure_arena(data, facts, name=path.name).required_bytes
        arena = tflm.arena_with_margin(measured)
    except ConversionError as error:  # an operator TFLM lacks: it cannot run at all
        problems.append(str(error))
        measured = arena = None
    if facts.float_activations:
        notes.append("not full-integer: TFLM runs float models with slow reference kernels and no CMSIS-NN/"
                     "ESP-NN acceleration; convert with --int8")
    io_bytes = sum(_spec_bytes(spec) for spec in (*report["inputs"], *report["outputs"]))
    ram = None
    if arena is not None:
        ram = _budget(arena + io_bytes, mcu.ram_bytes, arena_bytes=arena, arena_measured_bytes=measured,
                      io_buffer_bytes=io_bytes, arena_limit_bytes=mcu.arena_limit_bytes, basis=RAM_BASIS)
        if arena > mcu.arena_limit_bytes:
            ram["fits"] = False
            problems.append(f"the arena ({format_size(arena)}) is larger than the biggest block of RAM "
                            f"({format_size(mcu.arena_limit_bytes)})")
    code = tflm_code_bytes(facts.ops)
    flash = _budget(len(data) + code, mcu.flash_bytes, model_bytes=len(data), code_bytes=code, basis=CODE_BASIS)
    fits = not problems and ram is not None and ram["fits"] and flash["fits"]
    for name, budget in (("RAM", ram), ("flash", flash)):
        if budget and budget["fits"] and budget["margin_fraction"] < TIGHT_FRACTION:
            notes.append(f"{name} is tight: {budget['margin_fraction']:.0%} left for the rest of the firmware")
    notes.append("the board's own firmware (RTOS, radio stacks, drivers) needs RAM and flash too")
    return {"device": profile.name, "kind": "mcu", "fits": bool(fits), "ram": ram, "flash": flash,
            "ops": list(facts.ops), "problems": problems, "notes": notes}


def tflm_code_bytes(ops) -> int:
    """The estimate of TFLM's code for a model with these operators (see CODE_BASIS)."""
    return TFLM_CORE_CODE_BYTES + sum(
        TFLM_HEAVY_KERNEL_CODE_BYTES if op in HEAVY_KERNELS else TFLM_KERNEL_CODE_BYTES for op in ops)


def _linux_fit(path: Path, report: dict, profile) -> dict:
    import platform

    import edgeml_runtime

    runs = 5
    result = edgeml_runtime.benchmark(path, runs=runs, warmup=1, min_seconds=0.0, warmup_seconds=0.0,
                                      threads=profile.threads)
    peak = int(result.peak_rss_mb * 1024 * 1024)
    basis = LINUX_RAM_BASIS.format(runs=runs, machine=f"{platform.machine()}, backend {result.backend}")
    ram = _budget(peak, profile.ram_mb * 1024 * 1024, peak_rss_bytes=peak, basis=basis)
    notes = ["the operating system and your application share the board's RAM"]
    if ram["fits"] and ram["margin_fraction"] < TIGHT_FRACTION:
        notes.append(f"RAM is tight: {ram['margin_fraction']:.0%} left")
    return {"device": profile.name, "kind": "linux", "fits": bool(ram["fits"]), "ram": ram, "flash": None,
            "problems": [] if ram["fits"] else [f"needs {format_size(peak)} of RAM, the board has "
                                                f"{format_size(profile.ram_mb * 1024 * 1024)}"],
            "notes": notes}


def _budget(needed: int, available: int, *, basis: str, **parts) -> dict:
    margin = available - needed
    return {"needed_bytes": int(needed), "available_bytes": int(available), "margin_bytes": int(margin),
            "margin_fraction": margin / available if available else 0.0, "fits": needed <= available,
            **{key: value for key, value in parts.items()}, "basis": basis}


def _spec_bytes(spec: dict) -> int:
    count = int(np.prod([d or 1 for d in spec["shape"]])) if spec["shape"] else 1
    return count * np.dtype(spec["dtype"]).itemsize
