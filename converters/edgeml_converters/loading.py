"""Loading the source model (.keras, .h5, SavedModel; .onnx in `onnx_source`) into one form the exporters and
validation share.

Every source ends up as a SavedModel with a `serving_default` signature whose input and output keys are
the model's own input/output names: the TFLite converter and tf2onnx both read that, so Sequential,
Functional and subclassed models, several inputs/outputs and a dynamic batch all take the same path
(tf2onnx's `from_keras` does not work on Keras 3 models, which is why it is not used).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from edgeml_runtime import ModelLoadError, formats
from edgeml_runtime.errors import first_line as _first_line

from edgeml_converters.errors import UnsafeModelError
from edgeml_converters.output_dir import make_scratch_dir, remove_scratch_dir
from edgeml_converters.tensorflow_env import import_tensorflow

__all__ = ["SourceModel", "TensorInfo", "detect_kind", "keras_source", "load_keras_model", "load_source",
           "saved_model_source"]

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
SERVING = "serving_default"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: Tuple[Optional[int], ...]
    dtype: str


@dataclass
class SourceModel:
    """The loaded original: its tensors, a SavedModel to convert from, and `predict` for validation."""

    path: Path
    kind: str  # "keras" | "h5" | "saved_model" | "onnx"
    loader: str  # which library loaded it, e.g. "keras 3.15.1" or "tf_keras 2.21.0"
    inputs: List[TensorInfo]
    outputs: List[TensorInfo]
    saved_model_dir: Optional[Path]  # None for an ONNX source (its TFLite route makes one, see onnx2tf_route)
    predict: Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]]
    notes: List[str] = field(default_factory=list)
    signature_key: str = SERVING
    temporary_dir: Optional[Path] = None  # our own export, removed by `cleanup()`
    keep_alive: object = None  # a loaded SavedModel (or TF1 Session) must outlive its signature function
    # Set only for a SavedModel read by the TF1 loader: returns the frozen graph tf2onnx converts from.
    frozen_graph: Optional[Callable[[], tuple]] = None
    # The Keras model itself (Keras sources only): its layer names name the converted ops, and the precision repair
    # equalizes a copy of it.
    keras_model: object = None
    # ONNX sources only: the checked, shape-inferred fp32 model (weights inline) and `onnx_source.onnx_facts`.
    onnx_path: Optional[Path] = None
    onnx_facts: Optional[dict] = None

    def cleanup(self) -> None:
        if self.temporary_dir is not None:
            remove_scratch_dir(self.temporary_dir)
        if self.frozen_graph is not None:  # the TF1 Session holds the variables until closed
            self.keep_alive.close()


def detect_kind(path: Path) -> str:
    """'keras', 'h5', 'saved_model' or 'onnx', from the path and the file's first bytes (ONNX files have no magic:
    the suffix says it)."""
    if not path.exists():
        raise ModelLoadError(f"model not found: {path}")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "saved_model"
        raise ModelLoadError(
            f"{path} is a directory without saved_model.pb; pass a .keras/.h5 file or a SavedModel directory"
        )
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head == HDF5_MAGIC:
        return "h5"
    if head[:4] == b"PK\x03\x04":
        return "keras"
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.suffix.lower() == ".ort" or formats.format_of_magic(head) == "onnx":
        raise ModelLoadError(f"{path}: an ONNX Runtime Mobile (.ort) file is a deployment format; convert the .onnx "
                             "model it was made from")
    if path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        raise ModelLoadError(
            f"{path}: not a valid {path.suffix} file (wrong header); the file is corrupt or truncated, "
            "save the model again"
        )
    raise ModelLoadError(
        f"{path}: not a model file; edgeml convert reads .keras, .h5, .onnx and SavedModel directories"
    )


def load_source(path: Path, *, unsafe: bool = False) -> SourceModel:
    """Load `path`, refusing code that would run on this machine unless `unsafe` (Lambda layers; SavedModel
    graphs that touch files, run Python or reach the network), and export its SavedModel."""
    kind = detect_kind(path)
    if kind == "onnx":  # no code runs from an ONNX file: nothing for --unsafe to allow
        from edgeml_converters.onnx_source import load_onnx_source

        return load_onnx_source(path)
    if kind == "saved_model":
        if not unsafe:
            refuse_unsafe_graph(path)
        return _load_saved_model(path)
    model, loader, notes = load_keras_model(path, kind, unsafe=unsafe)
    return _from_keras_model(model, path, kind, loader, notes)


def load_keras_model(path: Path, kind: str, *, unsafe: bool = False):
    """(Keras model, loader name, notes) for a .keras/.h5 file: Lambda layers refused unless `unsafe`; Keras 3,
    then tf_keras for Keras 2 files. What `edgeml convert` and `edgeml inspect` both load."""
    if not unsafe:
        _refuse_lambda_layers(path, kind)
    return _load_keras(path, kind, unsafe)


# --- safety: Lambda layers carry Python bytecode that runs when the model is loaded ---------------


def _refuse_lambda_layers(path: Path, kind: str) -> None:
    config = _read_model_config(path, kind)
    lambdas = sorted(set(_lambda_layer_names(config)))
    if lambdas:
        raise UnsafeModelError(
            f"{path.name} contains Lambda layer(s) {', '.join(lambdas)} with Python code that would run "
            "when the model is loaded; pass --unsafe (unsafe=True) only if you trust where the file came from"
        )


def _read_model_config(path: Path, kind: str) -> dict:
    try:
        if kind == "keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        import h5py

        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
        raise ModelLoadError(
            f"{path.name}: cannot read the model configuration ({_first_line(error)}); the file is corrupt "
            "or truncated, save the model again"
        ) from None
    if raw is None:
        raise ModelLoadError(
            f"{path.name} holds weights only, no model configuration; save the whole model "
            "(model.save('model.keras')), not model.save_weights()"
        )
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _lambda_layer_names(node) -> List[str]:
    found = []
    if isinstance(node, dict):
        if node.get("class_name") == "Lambda":
            found.append(str(node.get("config", {}).get("name", "lambda")))
        for value in node.values():
            found.extend(_lambda_layer_names(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_lambda_layer_names(value))
    return found


# --- safety: a SavedModel's graph runs when it is loaded, traced, converted and validated --------------

# TensorFlow ops with effects outside the graph: files, Python code, the network. A model that converts to
# TFLite/ONNX needs none of them; the graph is inspected (not run) and such a model refused unless --unsafe.
UNSAFE_OPS = {
    "reads or writes files": (
        "WriteFile", "ReadFile", "MatchingFiles", "ImmutableConst", "LoadAndRemapMatrix", "GenerateVocabRemapping",
        "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "TFRecordReader",
        "TFRecordReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "LMDBReader", "IdentityReader",
        "IdentityReaderV2", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
        "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "LMDBDataset",
        "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset", "MatchingFilesDataset",
        "ExperimentalMatchingFilesDataset", "SaveDataset", "SaveDatasetV2", "LoadDataset", "ExperimentalLoadDataset",
        "SnapshotDataset", "SnapshotDatasetV2", "ExperimentalSnapshotDataset", "DatasetToTFRecord",
        "ExperimentalDatasetToTFRecord", "CacheDataset", "CacheDatasetV2", "DistributedSave",
        "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteScalarSummary",
        "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary", "WriteGraphSummary",
        "WriteRawProtoSummary", "ImportEvent", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
        "DebugNumericSummary", "DebugNumericSummaryV2",
    ),
    "runs Python code": ("PyFunc", "PyFuncStateless", "EagerPyFunc"),
    "reaches the network": (
        "Rpc", "TryRpc", "RpcCall", "RpcClient", "RpcServer", "RpcServerStart", "RpcServerRegister",
        "RpcCheckStatus", "RpcGetValue", "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3",
        "DataServiceDatasetV4", "RegisterDataset", "RegisterDatasetV2", "BigQueryReader",
        "GenerateBigQueryReaderPartitions",
    ),
}
# Checkpoint ops write and read files too. Every SavedModel has them in its saver (`_traced_save`,
# `_traced_restore`, TF1's save/restore nodes), which loading uses; on the serving path they are refused.
CHECKPOINT_OPS = ("Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice", "MergeV2Checkpoints")
_WHY = {op: why for why, ops in UNSAFE_OPS.items() for op in ops}


def refuse_unsafe_graph(path: Path) -> None:
    """UnsafeModelError when the SavedModel at `path` holds ops with effects outside the graph: anywhere
    (UNSAFE_OPS, PrintV2 to a file), or on a signature's path (also CHECKPOINT_OPS). Nothing is run."""
    saved_model = _read_saved_model_proto(path)
    findings = unsafe_graph_ops(saved_model) if saved_model is not None else []
    if not findings:
        return
    shown = "; ".join(f"{op} in {where} ({why})" for op, where, why in findings[:4])
    more = f" and {len(findings) - 4} more" if len(findings) > 4 else ""
    raise UnsafeModelError(
        f"the SavedModel {path.name} holds operations that would act outside the model when it is loaded, traced "
        f"or validated: {shown}{more}; nothing was run. Pass --unsafe (unsafe=True) only if you trust where it "
        "came from"
    )


def unsafe_graph_ops(saved_model) -> List[Tuple[str, str, str]]:
    """(op, where, why) for every op of a SavedModel proto that is refused without --unsafe."""
    findings = []
    for meta_graph in saved_model.meta_graphs:
        graph = meta_graph.graph_def
        library = {function.signature.name: function for function in graph.library.function}
        serving_nodes, serving_functions = _serving_path(meta_graph, library)
        for node in graph.node:
            findings += _node_findings(node, node.name, node.name in serving_nodes)
        for name, function in library.items():
            for node in function.node_def:
                findings += _node_findings(node, f"{_readable(name)}/{node.name}", name in serving_functions)
    return findings


def _node_findings(node, where: str, serving: bool) -> List[Tuple[str, str, str]]:
    if node.op in _WHY:
        return [(node.op, where, _WHY[node.op])]
    if serving and node.op in CHECKPOINT_OPS:
        return [(node.op, where, "reads or writes checkpoint files while serving")]
    if node.op == "PrintV2":
        stream = node.attr["output_stream"].s.decode(errors="replace") if "output_stream" in node.attr else ""
        if stream.startswith("file"):
            return [(node.op, where, f"prints to {stream}")]
    return []


def _serving_path(meta_graph, library) -> Tuple[set, set]:
    """Graph nodes feeding the signatures' outputs, and every function they call (transitively)."""
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    pending = [tensor.name for signature in meta_graph.signature_def.values()
               for tensor in list(signature.outputs.values())]
    reached, functions = set(), set()
    calls: List[str] = []
    while pending:
        name = pending.pop().lstrip("^").split(":")[0]
        if name in reached or name not in nodes:
            continue
        reached.add(name)
        node = nodes[name]
        pending.extend(node.input)
        calls.extend(_called(node, library))
    while calls:
        name = calls.pop()
        if name in functions or name not in library:
            continue
        functions.add(name)
        for node in library[name].node_def:
            calls.extend(_called(node, library))
    return reached, functions


def _called(node, library) -> List[str]:
    """Functions a node runs: itself a function call, or through function-valued attributes (PartitionedCall
    `f`, If/While branches and bodies, ...)."""
    names = [node.op] if node.op in library else []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        if value.HasField("list"):
            names.extend(function.name for function in value.list.func)
    return names


def _readable(function_name: str) -> str:
    """'__inference_serve_31' -> 'serve' (TensorFlow's traced-function names)."""
    match = re.fullmatch(r"__inference_(.+?)_\d+", function_name)
    return match.group(1) if match else function_name


def _read_saved_model_proto(path: Path):
    """The SavedModel protobuf; None when it does not parse (then TensorFlow's loaders, which read the same
    file, refuse it too and say why)."""
    import_tensorflow()
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    binary, text = path / "saved_model.pb", path / "saved_model.pbtxt"
    try:
        if binary.is_file():
            saved_model.ParseFromString(binary.read_bytes())
        else:
            text_format.Parse(text.read_text(encoding="utf-8"), saved_model)
    except (message.DecodeError, text_format.ParseError, OSError, UnicodeDecodeError, ValueError):
        return None
    return saved_model


# --- Keras ------------------------------------------------------------------------------------------


def _load_keras(path: Path, kind: str, unsafe: bool):
    """Keras 3 first; Keras 2 .h5 files Keras 3 cannot read (e.g. DepthwiseConv2D with `groups`) via tf_keras."""
    import_tensorflow()
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=not unsafe)
        return model, f"keras {keras.__version__}", []
    except Exception as error:  # Keras raises ValueError/TypeError/KeyError/OSError for unreadable files
        keras3_error = error
    if kind != "h5":
        raise ModelLoadError(f"cannot load {path.name} with Keras {keras.__version__}: {_first_line(keras3_error)}")
    import tf_keras

    try:
        model = tf_keras.models.load_model(path, compile=False)
    except Exception as error:
        raise ModelLoadError(
            f"cannot load {path.name}: Keras {keras.__version__} says '{_first_line(keras3_error)}', "
            f"tf_keras {tf_keras.__version__} says '{_first_line(error)}'; the file is corrupt, truncated "
            "or uses custom layers that are not importable here"
        ) from None
    note = f"a Keras 2 file: loaded with tf_keras {tf_keras.__version__} (Keras {keras.__version__} cannot read it)"
    return model, f"tf_keras {tf_keras.__version__}", [note]


def keras_source(model, like: SourceModel, note: str) -> SourceModel:
    """A source made from another Keras model object `model` (e.g. an equalized copy of `like`'s), exported the same
    way; the caller calls its `cleanup()`."""
    return _from_keras_model(model, like.path, like.kind, like.loader, [note])


def _from_keras_model(model, path: Path, kind: str, loader: str, notes: List[str]) -> SourceModel:
    tf = import_tensorflow()
    inputs = _keras_inputs(model)
    specs = [tf.TensorSpec(info.shape, info.dtype, name=info.name) for info in inputs]
    probe = [np.zeros((1,) + tuple(d or 1 for d in info.shape[1:]), info.dtype) for info in inputs]
    output_names = _keras_output_names(model, _call_keras(model, probe))

    def serve(*args):
        return _named_outputs(_call_keras(model, list(args)), output_names)

    temporary_dir = make_scratch_dir("edgeml-export-")  # locked while we live; a killed run's is removed later
    export_dir = temporary_dir / "saved_model"
    _export_keras(model, serve, specs, export_dir, tf)
    concrete = tf.function(serve, input_signature=specs).get_concrete_function()
    outputs = [
        TensorInfo(name, tuple(concrete.structured_outputs[name].shape.as_list()),
                   concrete.structured_outputs[name].dtype.name)
        for name in output_names
    ]

    def predict(feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        values = _call_keras(model, [feeds[info.name] for info in inputs])
        return {name: np.asarray(value) for name, value in _named_outputs(values, output_names).items()}

    return SourceModel(path, kind, loader, inputs, outputs, export_dir, predict, notes, temporary_dir=temporary_dir,
                       keras_model=model)


def _call_keras(model, args):
    return model(args[0] if len(args) == 1 else list(args), training=False)


def _keras_inputs(model) -> List[TensorInfo]:
    """Name, shape (batch always dynamic) and dtype of each input, also for subclassed models."""
    try:
        tensors = list(model.inputs or [])
    except AttributeError:  # a subclassed Keras 3 model has no symbolic inputs
        tensors = []
    if tensors:
        raw = [(getattr(t, "name", ""), tuple(t.shape), _dtype_name(t.dtype)) for t in tensors]
    else:
        raw = [(f"input_{i}", shape, "float32") for i, shape in enumerate(_built_input_shapes(model))]
    infos, used = [], set()
    for index, (name, shape, dtype) in enumerate(raw):
        clean = _signature_key(name.split(":")[0], f"input_{index}", used)
        infos.append(TensorInfo(clean, (None,) + tuple(shape[1:]), dtype))
    return infos


def _built_input_shapes(model) -> List[tuple]:
    config = model.get_build_config() if hasattr(model, "get_build_config") else None
    shape = (config or {}).get("input_shape")
    if shape is None:
        raise ModelLoadError(
            "cannot tell the model's input shape (a subclassed model that was never built); "
            "call the model on one batch before saving it"
        )
    if isinstance(shape, dict):
        return [tuple(value) for value in shape.values()]
    if shape and isinstance(shape[0], (list, tuple)):
        return [tuple(value) for value in shape]
    return [tuple(shape)]


def _keras_output_names(model, outputs) -> List[str]:
    if isinstance(outputs, dict):
        return [str(key) for key in outputs]
    count = len(outputs) if isinstance(outputs, (list, tuple)) else 1
    declared = list(getattr(model, "output_names", None) or [])
    candidates = declared if len(declared) == count else [f"output_{i}" for i in range(count)]
    used: set = set()
    return [_signature_key(name, f"output_{i}", used) for i, name in enumerate(candidates)]


def _named_outputs(outputs, names: List[str]) -> dict:
    if isinstance(outputs, dict):
        return {name: outputs[key] for name, key in zip(names, outputs)}
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return dict(zip(names, outputs))


def _export_keras(model, serve, specs, export_dir: Path, tf) -> None:
    """Write the SavedModel. Keras 3 needs its ExportArchive: with a plain tf.Module its variables are
    not frozen by the TFLite converter (the .tflite then reads uninitialised variables and returns NaN)."""
    import keras

    with contextlib.redirect_stdout(io.StringIO()):  # ExportArchive prints a summary of the endpoints
        if isinstance(model, keras.Model):
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint(SERVING, serve, input_signature=specs)
            archive.write_out(str(export_dir))
        else:  # a tf_keras model is itself trackable
            function = tf.function(serve, input_signature=specs)
            tf.saved_model.save(model, str(export_dir), signatures={SERVING: function.get_concrete_function()})


# --- SavedModel --------------------------------------------------------------------------------------


def _load_saved_model(path: Path) -> SourceModel:
    """Through `tf.saved_model.load`; when it rejects the directory, through the TF1 loader instead."""
    tf = import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # ValueError for several MetaGraphs, others for what it cannot restore
        return _load_saved_model_tf1(path, tf, error)
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    key, notes = _pick_signature(path, signatures)
    signature = signatures[key]
    input_specs = signature.structured_input_signature[1]
    inputs = [TensorInfo(name, tuple(spec.shape.as_list()), spec.dtype.name) for name, spec in input_specs.items()]
    outputs = [
        TensorInfo(name, tuple(spec.shape.as_list()), spec.dtype.name)
        for name, spec in signature.structured_outputs.items()
    ]

    def predict(feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        values = signature(**{name: tf.constant(value) for name, value in feeds.items()})
        return {info.name: values[info.name].numpy() for info in outputs}

    loader = f"tf.saved_model {tf.__version__}"
    return SourceModel(
        path, "saved_model", loader, inputs, outputs, path, predict, notes, signature_key=key, keep_alive=loaded
    )


def saved_model_source(path: Path) -> SourceModel:
    """A SavedModel we wrote ourselves (e.g. onnx2tf's from an ONNX source): loaded without the untrusted-graph
    checks, for its signature's names and shapes."""
    return _load_saved_model(path)


def _pick_signature(path: Path, signatures) -> Tuple[str, List[str]]:
    if not signatures:
        raise ModelLoadError(
            f"the SavedModel {path} has no signatures, so there is nothing to convert; export it with "
            "model.export(path) (Keras) or tf.saved_model.save(obj, path, signatures=...)"
        )
    key = SERVING if SERVING in signatures else sorted(signatures)[0]
    return key, [] if key == SERVING else [f"using signature '{key}' (no '{SERVING}')"]


def _load_saved_model_tf1(path: Path, tf, rejection: Exception) -> SourceModel:
    """A SavedModel `tf.saved_model.load` rejects, e.g. a TF1 Estimator/`saved_model.Builder` export with
    several MetaGraphs (train/eval/serve: `load` then demands `tags=`), read the way TF1 serving reads it:
    the 'serve' MetaGraph in a Session. The TFLite converter's `from_saved_model` (which picks the 'serve'
    tags itself) converts it; ONNX comes from this session's graph, frozen (`frozen_graph`)."""
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(session, [tf.saved_model.SERVING], str(path))
    except Exception as error:
        session.close()
        first, second = _first_line(rejection), _first_line(error)
        reason = first if first == second else (
            f"tf.saved_model.load says '{first}', the TF1 loader (tag 'serve') says '{second}'")
        raise ModelLoadError(
            f"cannot load the SavedModel {path}: {reason}; the directory is incomplete or corrupt"
        ) from None
    key, notes = _pick_signature(path, dict(meta_graph.signature_def))
    signature = meta_graph.signature_def[key]

    def info(name, tensor) -> TensorInfo:
        shape = tf.TensorShape(tensor.tensor_shape)
        dims = tuple(shape.as_list()) if shape.rank is not None else ()
        return TensorInfo(name, dims, tf.dtypes.as_dtype(tensor.dtype).name)

    inputs = [info(name, tensor) for name, tensor in signature.inputs.items()]
    outputs = [info(name, tensor) for name, tensor in signature.outputs.items()]
    feeds_to = {name: tensor.name for name, tensor in signature.inputs.items()}
    fetches = {name: tensor.name for name, tensor in signature.outputs.items()}

    def predict(feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        return session.run(fetches, {feeds_to[name]: value for name, value in feeds.items()})

    def frozen_graph():
        """(GraphDef with variables as constants, input names, output names, graph name -> signature key)."""
        ops = sorted({name.split(":")[0] for name in fetches.values()})
        graph_def = tf.compat.v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ops)
        renames = {tensor: key for key, tensor in {**feeds_to, **fetches}.items()}
        return graph_def, list(feeds_to.values()), list(fetches.values()), renames

    notes.append(f"tf.saved_model.load rejected it ({_first_line(rejection)}); loaded its 'serve' MetaGraph "
                 "with the TF1 loader instead")
    loader = f"tf.compat.v1.saved_model.loader {tf.__version__} (tags 'serve'; tf.saved_model.load rejected it)"
    return SourceModel(path, "saved_model", loader, inputs, outputs, path, predict, notes,
                       signature_key=key, keep_alive=session, frozen_graph=frozen_graph)


# --- helpers -------------------------------------------------------------------------------------------


def _dtype_name(dtype) -> str:
    return getattr(dtype, "name", None) or str(dtype)


def _signature_key(name: str, fallback: str, used: set) -> str:
    """A name usable as a SavedModel signature key and TF op name, unique within `used`."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name or "")
    if not clean or not clean[0].isalpha():
        clean = fallback
    unique, suffix = clean, 1
    while unique in used:
        suffix += 1
        unique = f"{clean}_{suffix}"
    used.add(unique)
    return unique
