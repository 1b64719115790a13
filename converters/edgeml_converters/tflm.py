"""TensorFlow Lite Micro (TFLM) sources from a full-integer .tflite, with the arena measured by TFLM itself.

Next to `model.int8.tflite`, `export_tflm()` writes (file names: `edgeml_runtime.formats.TFLM_FILES`):

- `<stem>_model_data.cc/.h`: the model as a 16-byte-aligned `const unsigned char` array and its length (the
  .cc compiles on its own: `g++ -std=c++17 -c`);
- `<stem>_ops.h`: `RegisterOps()`, filling a `tflite::MicroMutableOpResolver<N>` with exactly the operators the
  model uses (N = their count);
- `<stem>_arena.h`: `kTensorArenaSize`, the arena the real TFLM allocator had in use (the `tflite-micro`
  package runs the model on this machine) plus ARENA_MARGIN and ARENA_SLACK_BYTES;
- `<stem>_tflm.md`: how to set the interpreter up and run it.

The same inputs run through the TFLM interpreter and LiteRT (`edgeml_runtime`), and the difference is
reported in quanta (steps of the output's integer scale). The returned dict is the manifest's artifact entry.

    from edgeml_converters.tflm import export_tflm
    artifact = export_tflm("out/model.int8.tflite", samples=calibration_arrays)
    artifact["arena_bytes"], artifact["ops"], artifact["validation"]["max_quanta_diff"]

tflite-micro comes with the extra `edgeml-converters[tflm]`; it is imported inside the functions that need
it. A model is first loaded by LiteRT, which verifies the flatbuffer: TFLM itself trusts its input.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from edgeml_runtime.errors import BackendNotInstalled, InputError, ModelLoadError
from edgeml_runtime.formats import TFLM_FILES
from edgeml_runtime.progress import ProgressCallback, report
from edgeml_runtime.specs import Quantization, TensorSpec

from edgeml_converters.errors import ConversionError

__all__ = [
    "ARENA_ALIGNMENT",
    "ARENA_MARGIN",
    "ARENA_SLACK_BYTES",
    "INSTALL_HINT",
    "QUANTA_TOLERANCE",
    "RESOLVER_METHODS",
    "ArenaMeasurement",
    "ModelFacts",
    "TflmInterpreter",
    "arena_with_margin",
    "compare_with_litert",
    "cpp_identifier",
    "export_tflm",
    "measure_arena",
    "read_model",
    "require_full_integer",
    "require_tflite_micro",
    "resolver_methods",
    "tflite_micro_version",
]

INSTALL_HINT = "pip install 'edgeml-converters[tflm]'"

# kTensorArenaSize = the measured arena + 10% + 2 KiB, rounded up to 16 bytes. Why a margin at all: the host
# measures with TFLM's reference kernels; the optimized kernels a board links (CMSIS-NN, ESP-NN) may ask for
# scratch buffers the reference ones do not (im2col for convolutions: a few KiB on small models). The host is
# 64-bit, so TFLM's own bookkeeping (pointers in TfLiteEvalTensor, node structs) is larger here than on a 32-bit
# microcontroller: that part of the figure errs on the safe side. Tensors themselves are planned by the same
# greedy planner on both. The bound the tests hold it to: measured <= arena <= 1.5 x measured + 4 KiB.
ARENA_MARGIN = 0.10
ARENA_SLACK_BYTES = 2048
ARENA_ALIGNMENT = 16
# TFLM's and LiteRT's int8 kernels share their reference arithmetic; rounding in requantization may differ
# by one step, rarely two, where the two libraries take different (both valid) fixed-point paths.
QUANTA_TOLERANCE = 2
VALIDATION_SAMPLES = 16
CHILD_TIMEOUT_S = 600  # setting a model up and running it once; large models on reference kernels take seconds

# TFLite builtin operator -> the tflite::MicroMutableOpResolver method that registers TFLM's kernel for it
# (tensorflow/lite/micro/micro_mutable_op_resolver.h). An operator missing here has no TFLM kernel.
RESOLVER_METHODS: Dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "ELU": "AddElu", "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish", "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean", "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg", "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable", "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQRT": "AddSqrt", "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference", "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv", "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack", "VAR_HANDLE": "AddVarHandle", "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
    # Custom operators TFLM ships kernels for, by their custom name (Signal*: TFLM's signal library).
    "CIRCULAR_BUFFER": "AddCircularBuffer", "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "SignalDelay": "AddDelay", "SignalEnergy": "AddEnergy", "SignalFftAutoScale": "AddFftAutoScale",
    "SignalFilterBank": "AddFilterBank", "SignalFilterBankLog": "AddFilterBankLog",
    "SignalFilterBankSpectralSubtraction": "AddFilterBankSpectralSubtraction",
    "SignalFilterBankSquareRoot": "AddFilterBankSquareRoot", "SignalFramer": "AddFramer",
    "SignalIrfft": "AddIrfft", "SignalOverlapAdd": "AddOverlapAdd", "SignalPCAN": "AddPCAN",
    "SignalRfft": "AddRfft", "SignalStacker": "AddStacker", "SignalWindow": "AddWindow",
}

_ITEM_BYTES = {"INT8": 1, "UINT8": 1, "BOOL": 1, "INT16": 2, "UINT16": 2, "FLOAT16": 2, "BFLOAT16": 2,
               "INT32": 4, "UINT32": 4, "FLOAT32": 4, "INT64": 8, "UINT64": 8, "FLOAT64": 8, "COMPLEX64": 8,
               "COMPLEX128": 16, "INT4": 0.5}
_FLOAT_TYPES = {"FLOAT16", "FLOAT32", "FLOAT64", "BFLOAT16", "COMPLEX64", "COMPLEX128"}
_CPP_KEYWORDS = {"alignas", "alignof", "and", "asm", "auto", "bool", "break", "case", "catch", "char", "class",
                 "const", "constexpr", "continue", "default", "delete", "do", "double", "else", "enum", "explicit",
                 "export", "extern", "false", "float", "for", "friend", "goto", "if", "inline", "int", "long",
                 "namespace", "new", "not", "operator", "or", "private", "protected", "public", "register",
                 "return", "short", "signed", "sizeof", "static", "struct", "switch", "template", "this",
                 "throw", "true", "try", "typedef", "typename", "union", "unsigned", "using", "virtual", "void",
                 "volatile", "while", "xor", "tflite", "std"}


# ---------------------------------------------------------------------------------------------------------------
# Reading the model

@dataclass(frozen=True)
class TensorFacts:
    index: int
    name: str
    shape: Tuple[int, ...]
    type: str  # TFLite TensorType name: INT8, FLOAT32, ...
    bytes: int
    constant: bool  # backed by a buffer in the flatbuffer (weights, biases): stays in flash


@dataclass(frozen=True)
class ModelFacts:
    """What the flatbuffer says, read with the schema tflite-micro ships (no TensorFlow, no interpreter)."""

    bytes: int
    ops: Tuple[str, ...]  # distinct operators, sorted (custom operators by their custom name)
    op_count: int  # operator nodes over every subgraph
    tensors: Tuple[TensorFacts, ...]  # of the main subgraph
    input_names: Tuple[str, ...]
    output_names: Tuple[str, ...]
    subgraphs: int

    @property
    def activation_tensors(self) -> List[TensorFacts]:
        return [tensor for tensor in self.tensors if not tensor.constant]

    @property
    def naive_activation_bytes(self) -> int:
        """Every non-constant tensor in a buffer of its own (16-byte aligned): memory without a planner."""
        return sum(_round_up(tensor.bytes, ARENA_ALIGNMENT) for tensor in self.activation_tensors)

    @property
    def float_activations(self) -> List[str]:
        return [tensor.name for tensor in self.activation_tensors if tensor.type in _FLOAT_TYPES]

    @property
    def quantization(self) -> str:
        """'int8' when every activation is an integer and the inputs are int8 ('int16x8' for int16 ones)."""
        if self.float_activations:
            return "float"
        types = {tensor.type for tensor in self.tensors if tensor.name in self.input_names}
        return "int16x8" if types == {"INT16"} else "int8"


def read_model(model: Union[bytes, os.PathLike, str]) -> ModelFacts:
    """Operators, tensors and I/O names of a .tflite (bytes or a path)."""
    data = _model_bytes(model)
    schema = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelLoadError("not a TFLite model: no 'TFL3' identifier at bytes 4..8")
    try:
        return _facts(schema, data)
    except Exception as error:  # noqa: BLE001 - a damaged flatbuffer fails in many ways; all mean the same
        raise ModelLoadError(f"not a readable TFLite flatbuffer ({type(error).__name__}: {error})") from None


def _facts(schema, data: bytes) -> ModelFacts:
    parsed = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    if not parsed.subgraphs:
        raise ValueError("the model has no subgraph")
    builtin_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    opcodes = parsed.operatorCodes or []
    used, op_count = set(), 0
    for subgraph in parsed.subgraphs or []:
        for operator in subgraph.operators or []:
            code = opcodes[operator.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            name = builtin_names.get(builtin, f"BUILTIN_{builtin}")
            if name == "CUSTOM":
                name = _text(code.customCode) or "CUSTOM"
            used.add(name)
            op_count += 1
    main = parsed.subgraphs[0]
    buffers = parsed.buffers or []
    tensors = []
    for index, tensor in enumerate(main.tensors or []):
        shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
        type_name = type_names.get(tensor.type, str(tensor.type))
        buffer = buffers[tensor.buffer] if 0 < tensor.buffer < len(buffers) else None
        constant = buffer is not None and (
            (buffer.data is not None and len(buffer.data) > 0) or bool(getattr(buffer, "size", 0)))
        count = int(np.prod(shape)) if shape else 1
        tensors.append(TensorFacts(index, _text(tensor.name), shape, type_name,
                                   int(math.ceil(count * _ITEM_BYTES.get(type_name, 4))), constant))
    inputs, outputs = _io_names(parsed, main, tensors)
    return ModelFacts(len(data), tuple(sorted(used)), op_count, tuple(tensors), inputs, outputs,
                      len(parsed.subgraphs))


def _io_names(parsed, main, tensors) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """Names as edgeml_runtime gives them: the single signature's names, else the tensor names."""
    by_index = {tensor.index: tensor.name for tensor in tensors}
    input_names = {index: by_index[index] for index in main.inputs}
    output_names = {index: by_index[index] for index in main.outputs}
    signatures = parsed.signatureDefs or []
    if len(signatures) == 1:
        for entry in signatures[0].inputs or []:
            input_names[entry.tensorIndex] = _text(entry.name)
        for entry in signatures[0].outputs or []:
            output_names[entry.tensorIndex] = _text(entry.name)
    return (tuple(input_names[index] for index in main.inputs),
            tuple(output_names[index] for index in main.outputs))


def resolver_methods(ops: Sequence[str]) -> List[str]:
    """The MicroMutableOpResolver methods for `ops`; a ConversionError naming every operator TFLM lacks."""
    missing = [op for op in ops if op not in RESOLVER_METHODS]
    if missing:
        raise ConversionError(
            f"TensorFlow Lite Micro has no kernel for {', '.join(missing)} (used by this model); replace the "
            f"layer{'s' if len(missing) > 1 else ''} with supported ones (TFLM runs {len(RESOLVER_METHODS)} "
            "operators, e.g. CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, the pooling and activation "
            "operators) or register your own kernel with AddCustom()")
    return [RESOLVER_METHODS[op] for op in ops]


def require_full_integer(facts: ModelFacts, name: str = "the model") -> None:
    """A ConversionError unless every activation of the model is an integer tensor (full-integer quantized)."""
    floats = facts.float_activations
    if floats:
        shown = ", ".join(floats[:3]) + (f" and {len(floats) - 3} more" if len(floats) > 3 else "")
        raise ConversionError(
            f"{name} is not full-integer quantized ({len(floats)} float tensors, e.g. {shown}); TFLM export needs "
            "an int8 model: convert with --int8 (full integer, int8 inputs and outputs)")


# ---------------------------------------------------------------------------------------------------------------
# The arena, measured by TFLM's RecordingMicroAllocator

@dataclass(frozen=True)
class ArenaMeasurement:
    """The arena as TFLM's allocator sees it.

    `required_bytes` is the smallest arena TFLM accepts for the model (AllocateTensors() succeeds), found by
    trying sizes in 16-byte steps; `used_bytes` is what its RecordingMicroAllocator reports in use after
    AllocateTensors() and one Invoke(). The first can exceed the second: planning needs temporary memory during
    AllocateTensors() that is given back afterwards (on small models it outweighs the tensors)."""

    required_bytes: int
    used_bytes: int  # head (planned tensors, scratch buffers) + tail (persistent structures)
    head_bytes: int
    tail_bytes: int
    breakdown: Dict[str, int] = field(default_factory=dict)  # TFLM's own categories, bytes with alignment
    tflite_micro: str = ""

    def to_dict(self) -> dict:
        return {"required_bytes": self.required_bytes, "used_bytes": self.used_bytes,
                "head_bytes": self.head_bytes, "tail_bytes": self.tail_bytes, "breakdown": dict(self.breakdown),
                "tflite_micro": self.tflite_micro}

    @classmethod
    def from_dict(cls, data: dict) -> ArenaMeasurement:
        return cls(int(data["required_bytes"]), int(data["used_bytes"]), int(data["head_bytes"]),
                   int(data["tail_bytes"]), {str(k): int(v) for k, v in data.get("breakdown", {}).items()},
                   str(data.get("tflite_micro", "")))


def arena_with_margin(used_bytes: int) -> int:
    """kTensorArenaSize for a measured arena: + ARENA_MARGIN + ARENA_SLACK_BYTES, rounded up to 16 bytes."""
    return _round_up(math.ceil(used_bytes * (1 + ARENA_MARGIN)) + ARENA_SLACK_BYTES, ARENA_ALIGNMENT)


def measure_arena(model: Union[bytes, os.PathLike, str], facts: Optional[ModelFacts] = None, *,
                  isolated: bool = True, name: Optional[str] = None) -> ArenaMeasurement:
    """Run the model once in TFLM (zero inputs) with a generous arena, read how much of it TFLM used, then find
    the smallest arena TFLM accepts (see ArenaMeasurement).

    `isolated` (the default) does it in a child process: when one of TFLM's kernels fails a check on a model it
    stops the whole process (abort) instead of returning an error, and in a child that becomes a
    ConversionError. Once a model has been set up in a child, setting it up again here is safe (the same checks
    pass). `name` names the model in errors (default: its file name). The model must already have been verified
    (loaded by LiteRT): TFLM does not check the flatbuffer."""
    data = _model_bytes(model)
    facts = facts or read_model(data)
    resolver_methods(facts.ops)
    if isolated:
        if name is None:
            name = Path(model).name if isinstance(model, (str, os.PathLike)) else "the model"
        return _measure_in_child(data, name)
    size = max(256 * 1024, 4 * facts.naive_activation_bytes + 64 * 1024)
    interpreter = _open(data, size, facts, allow_growth=True)
    _run_zeros(interpreter)
    with _CapturedStderr() as captured:
        interpreter.raw.print_allocations()
    used, head, tail, breakdown = _parse_allocations(captured.text)
    required = _smallest_arena(data, facts, used, interpreter.arena_bytes)
    return ArenaMeasurement(required, used, head, tail, breakdown, tflite_micro_version())


def _measure_in_child(data: bytes, name: str) -> ArenaMeasurement:
    """measure_arena in `python -m edgeml_converters.tflm MODEL`, which prints its result as one JSON line."""
    with tempfile.TemporaryDirectory(prefix="edgeml-tflm-") as folder:
        model_file = Path(folder) / "model.tflite"
        model_file.write_bytes(data)
        try:
            done = subprocess.run([sys.executable, "-m", "edgeml_converters.tflm", str(model_file)],
                                  capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ConversionError(f"TensorFlow Lite Micro did not finish setting up {name} within "
                                  f"{CHILD_TIMEOUT_S} s") from None
    answer = next((json.loads(line) for line in reversed(done.stdout.splitlines()) if line.startswith("{")), None)
    if answer is not None and answer.get("ok"):
        return ArenaMeasurement.from_dict(answer["measurement"])
    if answer is not None:
        error = BackendNotInstalled if answer["error"] == "BackendNotInstalled" else ConversionError
        raise error(answer["message"])
    last = [line.strip() for line in done.stderr.splitlines() if line.strip()][-1:]
    how = (f"stopped by {signal.Signals(-done.returncode).name}" if done.returncode < 0
           else f"exited with status {done.returncode}")
    raise ConversionError(
        f"TensorFlow Lite Micro {how} while setting up {name}: one of its kernels failed a check on this model "
        "(TFLM stops the process instead of returning an error). A frequent cause is a layer whose calibrated "
        "output is constant (zero weights, a dead activation), whose quantization scale the next kernel cannot "
        f"use; retrain or recalibrate.{' Last output: ' + last[0] if last else ''}")


def _child_main(argv: Sequence[str]) -> int:
    """`python -m edgeml_converters.tflm MODEL`: the measurement (or the error) as one JSON line on stdout."""
    try:
        measurement = measure_arena(Path(argv[0]), isolated=False)
    except (ConversionError, BackendNotInstalled, ModelLoadError) as error:
        print(json.dumps({"ok": False, "error": type(error).__name__, "message": str(error)}))
        return 1
    print(json.dumps({"ok": True, "measurement": measurement.to_dict()}))
    return 0


def _smallest_arena(data: bytes, facts: ModelFacts, low: int, high: int) -> int:
    """The smallest `low + 16 k` bytes in which TFLM sets the model up; `high` is known to work. `low` (what the
    allocator reported in use) is a lower bound: those bytes are in use once the tensors are allocated."""

    def works(size: int) -> bool:
        try:
            TflmInterpreter(data, size, facts=facts)
        except _ArenaTooSmall:
            return False
        return True

    if works(low):
        return low
    lo, hi = 0, max(1, math.ceil((high - low) / ARENA_ALIGNMENT))  # works(low + 16 hi) is known
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if works(low + ARENA_ALIGNMENT * middle):
            hi = middle
        else:
            lo = middle
    required = low + ARENA_ALIGNMENT * hi
    _run_zeros(TflmInterpreter(data, required, facts=facts))  # and it runs in that arena, not only sets up
    return required


def _run_zeros(interpreter: TflmInterpreter) -> None:
    for index, spec in enumerate(interpreter.inputs):
        interpreter.set_raw(index, np.zeros(spec.shape, spec.numpy_dtype))
    interpreter.invoke()


def _parse_allocations(text: str) -> Tuple[int, int, int, Dict[str, int]]:
    figures = {key: re.search(rf"Arena allocation {key} (\d+) bytes", text) for key in ("total", "head", "tail")}
    if figures["total"] is None:
        raise ConversionError("TFLM's allocation report has no 'Arena allocation total' line (tflite-micro "
                              f"{tflite_micro_version()}); report it to edgeml with its output: {text[:300]!r}")
    breakdown = {match.group(1): int(match.group(2))
                 for match in re.finditer(r"'([^']+)' used (\d+) bytes", text)}
    head, tail = (int(figures[key].group(1)) if figures[key] else 0 for key in ("head", "tail"))
    return int(figures["total"].group(1)), head, tail, breakdown


# ---------------------------------------------------------------------------------------------------------------
# Running the model in TFLM

class TflmInterpreter:
    """The TFLM interpreter on this machine, with edgeml_runtime's calling convention: `run(feeds)` takes
    one array, a list or a dict by input name (batch first), quantizes float inputs and dequantizes the
    outputs (raw=True: integers in and out). A batch larger than the model's runs sample by sample."""

    def __init__(self, model: Union[bytes, os.PathLike, str], arena_bytes: int, *,
                 facts: Optional[ModelFacts] = None):
        data = _model_bytes(model)
        self.facts = facts or read_model(data)
        self.arena_bytes = int(arena_bytes)
        self.raw = _create(data, self.arena_bytes)
        self.inputs = [_spec(name, self.raw.get_input_details(i)) for i, name in enumerate(self.facts.input_names)]
        self.outputs = [_spec(name, self.raw.get_output_details(i))
                        for i, name in enumerate(self.facts.output_names)]

    def set_raw(self, index: int, array: np.ndarray) -> None:
        self.raw.set_input(np.ascontiguousarray(array), index)

    def invoke(self) -> None:
        with _CapturedStderr() as captured:
            try:
                self.raw.invoke()
            except RuntimeError as error:
                raise ConversionError(f"TFLM failed to run the model: {_tflm_message(captured, error)}") from None

    def run(self, feeds: Any, *, raw: bool = False) -> Dict[str, np.ndarray]:
        arrays = self._arrays(feeds, raw)
        batch = self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else 1
        total = arrays[0].shape[0] if arrays else 1
        if total % batch:
            raise InputError(f"input '{self.inputs[0].name}': {total} samples do not split into the model's batch "
                             f"of {batch}")
        parts: Dict[str, List[np.ndarray]] = {spec.name: [] for spec in self.outputs}
        for start in range(0, total, batch):
            for index, array in enumerate(arrays):
                self.set_raw(index, array[start:start + batch])
            self.invoke()
            for index, spec in enumerate(self.outputs):
                parts[spec.name].append(self.raw.get_output(index))
        outputs = {name: np.concatenate(chunks) for name, chunks in parts.items()}
        if raw:
            return outputs
        return {spec.name: _dequantize(outputs[spec.name], spec) for spec in self.outputs}

    def _arrays(self, feeds: Any, raw: bool) -> List[np.ndarray]:
        if isinstance(feeds, Mapping):
            unknown = sorted(set(feeds) - {spec.name for spec in self.inputs})
            if unknown:
                raise InputError(f"unknown input {unknown[0]!r}; the model takes "
                                 f"{', '.join(spec.name for spec in self.inputs)}")
            missing = [spec.name for spec in self.inputs if spec.name not in feeds]
            if missing:
                raise InputError(f"input '{missing[0]}' is missing")
            values = [feeds[spec.name] for spec in self.inputs]
        elif isinstance(feeds, (list, tuple)):
            values = list(feeds)
        else:
            values = [feeds]
        if len(values) != len(self.inputs):
            raise InputError(f"the model takes {len(self.inputs)} inputs, got {len(values)}")
        arrays = [_prepare(np.asarray(value), spec, raw) for value, spec in zip(values, self.inputs)]
        if len({array.shape[0] for array in arrays}) > 1:
            raise InputError("inputs hold different numbers of samples")
        return arrays


def _prepare(array: np.ndarray, spec: TensorSpec, raw: bool) -> np.ndarray:
    shape = tuple(spec.shape)
    if array.ndim == len(shape) - 1:
        array = array[None]
    if array.ndim != len(shape) or tuple(array.shape[1:]) != shape[1:]:
        raise InputError(f"input '{spec.name}': expected shape (N, {', '.join(map(str, shape[1:]))}), "
                         f"got {tuple(array.shape)}")
    if array.dtype == spec.numpy_dtype:
        return array
    if np.issubdtype(array.dtype, np.floating) and spec.quantization is not None and not raw:
        if not np.all(np.isfinite(array)):
            raise InputError(f"input '{spec.name}': holds NaN or Inf")
        from edgeml_runtime.quantization import quantize

        return quantize(array, spec.quantization, spec.numpy_dtype)
    if np.can_cast(array.dtype, spec.numpy_dtype, casting="safe"):
        return array.astype(spec.numpy_dtype)
    raise InputError(f"input '{spec.name}': expected {spec.dtype}{'' if raw else ' (or float, quantized for you)'}, "
                     f"got {array.dtype}")


def _spec(name: str, details: dict) -> TensorSpec:
    quantization = details.get("quantization_parameters") or {}
    scales, zero_points = quantization.get("scales"), quantization.get("zero_points")
    quant = None
    if scales is not None and len(scales) == 1:
        quant = Quantization(float(scales[0]), int(zero_points[0]) if len(zero_points) else 0)
    return TensorSpec(name, tuple(int(d) for d in details["shape"]), np.dtype(details["dtype"]).name, quant)


def _dequantize(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.quantization is None:
        return array
    from edgeml_runtime.quantization import dequantize

    return dequantize(array, spec.quantization)


def _create(data: bytes, arena_bytes: int):
    """A TFLM interpreter over `arena_bytes`; TFLM's own messages become the ConversionError's text."""
    runtime = _runtime()
    with _CapturedStderr() as captured:
        try:
            return runtime.Interpreter.from_bytes(data, arena_size=int(arena_bytes))
        except (RuntimeError, ValueError) as error:
            message = _tflm_message(captured, error)
    found = re.findall(r"Didn't find op for builtin opcode '([^']+)'", message)
    custom = re.findall(r"Didn't find op for custom opcode '([^']+)'", message)
    if found or custom:
        raise ConversionError(f"TensorFlow Lite Micro has no kernel for {', '.join(found + custom)} "
                              f"(tflite-micro {tflite_micro_version()})")
    if re.search(r"failed to prepare|not supported|unsupported", message, re.IGNORECASE):
        raise ConversionError(f"TensorFlow Lite Micro cannot prepare the model: {message}")
    raise _ArenaTooSmall(f"TFLM could not set the model up in a {arena_bytes}-byte arena: {message}")


class _ArenaTooSmall(ConversionError):
    pass


def _open(data: bytes, arena_bytes: int, facts: ModelFacts, *, allow_growth: bool = False) -> TflmInterpreter:
    """A TflmInterpreter; with allow_growth, retried with a 4x larger arena (up to 1 GiB) when it is too small."""
    while True:
        try:
            return TflmInterpreter(data, arena_bytes, facts=facts)
        except _ArenaTooSmall:
            if not allow_growth or arena_bytes >= 1 << 30:
                raise
            arena_bytes *= 4


def _tflm_message(captured: _CapturedStderr, error: BaseException) -> str:
    lines = [line.strip() for line in captured.text.splitlines() if line.strip()]
    return "; ".join(lines[:4] + [str(error)]) if lines else str(error)


class _CapturedStderr:
    """Collect what C++ code writes to file descriptor 2 (TFLM prints its reports and errors there). While it is
    active, anything another thread writes to stderr lands here too."""

    def __init__(self):
        self.text = ""
        self._saved: Optional[int] = None

    def __enter__(self) -> _CapturedStderr:
        sys.stderr.flush()
        self._sink = tempfile.TemporaryFile()
        try:
            self._saved = os.dup(2)
            os.dup2(self._sink.fileno(), 2)
        except OSError:  # no usable fd 2: nothing to capture, TFLM writes nowhere
            self._saved = None
        return self

    def __exit__(self, *exc_info) -> None:
        if self._saved is not None:
            os.dup2(self._saved, 2)
            os.close(self._saved)
        self._sink.seek(0)
        self.text = self._sink.read().decode("utf-8", errors="replace")
        self._sink.close()


# ---------------------------------------------------------------------------------------------------------------
# TFLM against LiteRT

def compare_with_litert(tflite_path: Union[str, os.PathLike], tflm: TflmInterpreter, samples: Any = None, *,
                        count: int = VALIDATION_SAMPLES, seed: int = 0,
                        tolerance: int = QUANTA_TOLERANCE, samples_source: Optional[str] = None) -> dict:
    """Run the same integer inputs through TFLM and LiteRT (edgeml_runtime) and compare the integer outputs.
    The keys do not clash with the manifest's validation against the original model (max_abs_diff, cosine,
    top1_agreement), which the conversion adds beside them.

    `samples`: real-valued inputs (one array, a list or a dict by name; quantized with the model's input
    scale), integer arrays of the input's dtype (used as they are), or None for `count` random integer inputs.
    """
    import edgeml_runtime

    litert = edgeml_runtime.load(tflite_path, threads=1)
    raw_inputs, source = _validation_inputs(tflm, samples, count, seed)
    source = samples_source if samples is not None and samples_source else source
    total = raw_inputs[0].shape[0]
    worst, mean_parts, equal, real_diff = 0, [], [], 0.0
    for start in range(total):
        feed = [array[start:start + 1] for array in raw_inputs]
        mine = tflm.run(feed, raw=True)
        theirs = litert.run({spec.name: array for spec, array in zip(litert.inputs, feed)}, raw=True)
        references = [theirs[other.name] for other in litert.outputs]  # same order: the model's output list
        for spec, reference in zip(tflm.outputs, references):
            difference = np.abs(mine[spec.name].astype(np.int64) - np.asarray(reference).astype(np.int64))
            worst = max(worst, int(difference.max(initial=0)))
            mean_parts.append(float(difference.mean()) if difference.size else 0.0)
            equal.append(float(np.mean(difference == 0)) if difference.size else 1.0)
            if spec.quantization is not None:
                real_diff = max(real_diff, float(difference.max(initial=0)) * spec.quantization.scale)
    return {
        "samples": int(total),
        "data": source,
        "runner": f"tflite-micro {tflite_micro_version()} (host, reference kernels)",
        "litert": f"edgeml_runtime/{litert.backend} {litert.backend_version}",
        "max_quanta_diff": worst,
        "mean_quanta_diff": float(np.mean(mean_parts)) if mean_parts else 0.0,
        "exact_fraction": float(np.mean(equal)) if equal else 1.0,
        "litert_max_abs_diff": real_diff,  # the largest difference in real units (quanta x output scale)
        "tolerance_quanta": tolerance,
        "passed": worst <= tolerance,
    }


def _validation_inputs(tflm: TflmInterpreter, samples: Any, count: int, seed: int):
    if samples is None:
        rng = np.random.default_rng(seed)
        arrays = []
        for spec in tflm.inputs:
            info = np.iinfo(spec.numpy_dtype) if np.issubdtype(spec.numpy_dtype, np.integer) else None
            shape = (count * spec.shape[0], *spec.shape[1:])
            arrays.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=spec.numpy_dtype)
                          if info is not None else rng.standard_normal(shape).astype(spec.numpy_dtype))
        return arrays, f"random {tflm.inputs[0].dtype} inputs, seed {seed}"
    return tflm._arrays(samples, raw=False), "the given samples"


# ---------------------------------------------------------------------------------------------------------------
# The export

def export_tflm(tflite: Union[str, os.PathLike], *, output_dir: Union[str, os.PathLike, None] = None,
                samples: Any = None, sample_count: int = VALIDATION_SAMPLES, tolerance: int = QUANTA_TOLERANCE,
                samples_source: Optional[str] = None, progress: ProgressCallback = None) -> dict:
    """Write the TFLM sources for the full-integer model at `tflite` into `output_dir` (default: beside it)
    and return the manifest's artifact entry (`format` "tflm", `arena_bytes`, `ops`, `files`, `validation`).

    `samples` (batch-first real inputs, as for `TflmInterpreter.run`) feed the TFLM-vs-LiteRT comparison;
    without them `sample_count` random integer inputs do; `samples_source` names them in the report (e.g. the
    validation data's source). Raises ConversionError for a model that is not
    full-integer or uses an operator TFLM lacks; BackendNotInstalled without tflite-micro."""
    path = Path(tflite)
    data = _model_bytes(path)
    output_dir = Path(output_dir) if output_dir is not None else path.parent
    stem = path.name[:-len(".tflite")] if path.name.lower().endswith(".tflite") else path.stem
    _runtime()  # the install hint before any work

    report(progress, "tflm", f"checking {path.name} for TensorFlow Lite Micro")
    facts = read_model(data)
    require_full_integer(facts, path.name)
    methods = resolver_methods(facts.ops)
    import edgeml_runtime

    edgeml_runtime.load(path, threads=1)  # LiteRT verifies the flatbuffer before TFLM (which trusts it) reads it

    report(progress, "tflm", "measuring the tensor arena with the TFLM allocator")
    measured = measure_arena(data, facts, name=path.name)
    arena_bytes = arena_with_margin(measured.required_bytes)
    report(progress, "tflm", f"arena: TFLM needs {measured.required_bytes} bytes, kTensorArenaSize {arena_bytes} "
                             f"(every tensor in its own buffer: {facts.naive_activation_bytes})", level="note")

    report(progress, "tflm", "running TFLM and LiteRT on the same inputs")
    interpreter = TflmInterpreter(data, arena_bytes, facts=facts)  # the figure in _arena.h must be enough
    validation = compare_with_litert(path, interpreter, samples, count=sample_count, tolerance=tolerance,
                                     samples_source=samples_source)
    if not validation["passed"]:
        report(progress, "tflm", f"TFLM and LiteRT differ by up to {validation['max_quanta_diff']} quanta "
                                 f"(tolerance {tolerance})", level="warning")

    names = [pattern.format(stem=stem) for pattern in TFLM_FILES]
    namespace = cpp_identifier(stem)
    sources = _Sources(stem, namespace, path.name, data, facts, methods, measured, arena_bytes, interpreter,
                       validation)
    contents = dict(zip(names, (sources.model_data_cc(), sources.model_data_h(), sources.ops_h(),
                                sources.arena_h(), sources.usage())))
    report(progress, "tflm", f"writing {', '.join(names)}")
    _write_all(output_dir, contents)
    return {
        "path": names[0],
        "format": "tflm",
        "quantization": facts.quantization,
        "model": path.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "arena_bytes": arena_bytes,
        "arena": {
            "measured_bytes": measured.required_bytes,
            "in_use_bytes": measured.used_bytes,
            "margin": f"+{ARENA_MARGIN:.0%} + {ARENA_SLACK_BYTES} bytes, rounded up to {ARENA_ALIGNMENT}",
            "naive_activation_bytes": facts.naive_activation_bytes,
            "measured_with": f"tflite-micro {measured.tflite_micro} RecordingMicroAllocator, reference kernels, "
                             "64-bit host",
            **{key: value for key, value in measured.to_dict().items() if key in ("head_bytes", "tail_bytes")},
        },
        "ops": list(facts.ops),
        "op_resolver": {"size": len(methods), "methods": methods, "namespace": namespace},
        "files": names,
        "inputs": [spec.to_dict() for spec in interpreter.inputs],
        "outputs": [spec.to_dict() for spec in interpreter.outputs],
        "validation": validation,
        "tflite_micro": tflite_micro_version(),
    }


def cpp_identifier(stem: str) -> str:
    """A C++ namespace name from a file stem: 'model.int8' -> 'model_int8'."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", stem).strip("_") or "model"
    name = re.sub(r"__+", "_", name)
    if name[0].isdigit():
        name = "model_" + name
    return name + "_model" if name in _CPP_KEYWORDS else name


class _Sources:
    """The text of each generated file."""

    def __init__(self, stem, namespace, model_name, data, facts, methods, measured, arena_bytes, interpreter,
                 validation):
        self.stem, self.ns, self.model_name, self.data = stem, namespace, model_name, data
        self.facts, self.methods, self.measured, self.arena_bytes = facts, methods, measured, arena_bytes
        self.interpreter, self.validation = interpreter, validation
        self.guard = "EDGEML_" + namespace.upper()
        from edgeml_converters import __version__

        self.banner = (f"// Generated by edgeml-converters {__version__} from {model_name} "
                       f"(sha256 {hashlib.sha256(data).hexdigest()[:16]}). Do not edit: re-run the export.")

    def model_data_h(self) -> str:
        return f"""{self.banner}
// The model for TensorFlow Lite Micro: tflite::GetModel({self.ns}::kModelData).
#ifndef {self.guard}_MODEL_DATA_H_
#define {self.guard}_MODEL_DATA_H_

namespace {self.ns} {{

// The .tflite flatbuffer ({len(self.data)} bytes), 16-byte aligned as TFLM requires. const: it stays in flash.
alignas(16) extern const unsigned char kModelData[];
extern const unsigned int kModelDataLen;

}}  // namespace {self.ns}

#endif  // {self.guard}_MODEL_DATA_H_
"""

    def model_data_cc(self) -> str:
        rows = []
        for start in range(0, len(self.data), 12):
            rows.append("    " + ", ".join(f"0x{byte:02x}" for byte in self.data[start:start + 12]) + ",")
        body = "\n".join(rows)
        return f"""{self.banner}
#include "{self.stem}_model_data.h"

namespace {self.ns} {{

alignas(16) const unsigned char kModelData[] = {{
{body}
}};
const unsigned int kModelDataLen = {len(self.data)};

}}  // namespace {self.ns}
"""

    def ops_h(self) -> str:
        calls = "\n".join(f"  if (resolver.{method}() != kTfLiteOk) return kTfLiteError;" for method in self.methods)
        return f"""{self.banner}
// The operators {self.model_name} uses, and no others: {', '.join(self.facts.ops)}.
#ifndef {self.guard}_OPS_H_
#define {self.guard}_OPS_H_

#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

namespace {self.ns} {{

constexpr unsigned int kOpCount = {len(self.methods)};
using OpResolver = tflite::MicroMutableOpResolver<kOpCount>;

// Registers the model's {len(self.methods)} operators; kTfLiteError if TFLM refused one.
inline TfLiteStatus RegisterOps(OpResolver& resolver) {{
{calls}
  return kTfLiteOk;
}}

}}  // namespace {self.ns}

#endif  // {self.guard}_OPS_H_
"""

    def arena_h(self) -> str:
        measured = self.measured.required_bytes
        return f"""{self.banner}
// Tensor arena for {self.model_name}.
// Measured with TFLM's own allocator (tflite-micro {self.measured.tflite_micro}, reference kernels, 64-bit host):
// the model sets up (AllocateTensors) and runs in {measured} bytes and not in 16 fewer; afterwards
// {self.measured.used_bytes} bytes are in use ({self.measured.head_bytes} planned tensors and scratch buffers, \
{self.measured.tail_bytes} persistent).
// kTensorArenaSize = {measured} + {ARENA_MARGIN:.0%} + {ARENA_SLACK_BYTES} bytes, rounded up to {ARENA_ALIGNMENT}.
// The margin is for scratch buffers that optimized kernels (CMSIS-NN, ESP-NN) may request beyond the reference
// kernels'; TFLM's bookkeeping is smaller on a 32-bit MCU than on the host. On the board,
// interpreter.arena_used_bytes() after AllocateTensors() gives the real figure.
#ifndef {self.guard}_ARENA_H_
#define {self.guard}_ARENA_H_

#include <cstddef>

namespace {self.ns} {{

constexpr std::size_t kTensorArenaMeasuredBytes = {measured};
constexpr std::size_t kTensorArenaSize = {self.arena_bytes};

}}  // namespace {self.ns}

#endif  // {self.guard}_ARENA_H_
"""

    def usage(self) -> str:
        ns, stem = self.ns, self.stem
        io_lines = []
        for kind, specs in (("input", self.interpreter.inputs), ("output", self.interpreter.outputs)):
            for index, spec in enumerate(specs):
                q = spec.quantization
                quant = f"scale {q.scale:.9g}, zero point {q.zero_point}" if q else "not quantized"
                io_lines.append(f"- {kind} {index} `{spec.name}`: {spec.dtype} {list(spec.shape)}, {quant}")
        first_in, first_out = self.interpreter.inputs[0], self.interpreter.outputs[0]
        in_field, out_field = _C_FIELDS.get(first_in.dtype, "int8"), _C_FIELDS.get(first_out.dtype, "int8")
        qi, qo = first_in.quantization, first_out.quantization
        count = int(np.prod(first_in.shape))
        if qi:
            info = np.iinfo(first_in.numpy_dtype)
            fill = (f"for (size_t i = 0; i < {count}; ++i) {{  // x: your {count} input values, as float\n"
                    f"  const long q = std::lround(x[i] / {qi.scale:.9g}f){_offset(qi.zero_point, '+')};\n"
                    f"  input->data.{in_field}[i] = static_cast<{first_in.dtype}_t>(std::min(std::max(q, "
                    f"{info.min}L), {info.max}L));\n}}")
        else:
            fill = f"for (size_t i = 0; i < {count}; ++i) input->data.{in_field}[i] = x[i];"
        value = f"output->data.{out_field}[0]"
        dequantize = f"({value}{_offset(qo.zero_point, '-')}) * {qo.scale:.9g}f" if qo else value
        v = self.validation
        quanta = "quantum" if v["max_quanta_diff"] == 1 else "quanta"
        ops, needed = ", ".join(self.facts.ops), self.measured.required_bytes
        return f"""# {stem} on TensorFlow Lite Micro

Generated by edgeml from `{self.model_name}` ({len(self.data):,} bytes, full-integer {self.facts.quantization}).

| file | what |
|------|------|
| `{stem}_model_data.cc`, `.h` | the model: `{ns}::kModelData` (16-byte aligned), `{ns}::kModelDataLen` |
| `{stem}_ops.h` | `{ns}::RegisterOps()`: the {len(self.methods)} operators the model uses ({ops}) |
| `{stem}_arena.h` | `{ns}::kTensorArenaSize` = {self.arena_bytes:,} bytes (TFLM needs {needed:,}, plus margin) |

Inputs and outputs:
{chr(10).join(io_lines)}

## Set up once

```cpp
#include <algorithm>
#include <cmath>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "{stem}_arena.h"
#include "{stem}_model_data.h"
#include "{stem}_ops.h"

alignas(16) static uint8_t tensor_arena[{ns}::kTensorArenaSize];
static {ns}::OpResolver resolver;
static tflite::MicroInterpreter* interpreter = nullptr;

bool setup_model() {{
  const tflite::Model* model = tflite::GetModel({ns}::kModelData);
  if (model->version() != TFLITE_SCHEMA_VERSION) return false;
  if ({ns}::RegisterOps(resolver) != kTfLiteOk) return false;
  static tflite::MicroInterpreter static_interpreter(model, resolver, tensor_arena, {ns}::kTensorArenaSize);
  interpreter = &static_interpreter;
  return interpreter->AllocateTensors() == kTfLiteOk;  // arena_used_bytes() now says what it took
}}
```

## Run, in your loop

```cpp
TfLiteTensor* input = interpreter->input(0);
{fill}
if (interpreter->Invoke() != kTfLiteOk) {{ /* report the error */ }}
TfLiteTensor* output = interpreter->output(0);
float value0 = {dequantize};
```

## What was checked here

- The arena: TFLM's own allocator sets the model up and runs it in {self.measured.required_bytes:,} bytes here;
  `kTensorArenaSize` adds {ARENA_MARGIN:.0%} + {ARENA_SLACK_BYTES} bytes for the scratch buffers optimized kernels
  (CMSIS-NN, ESP-NN) may ask for. Check `interpreter->arena_used_bytes()` on the board.
- The outputs: TFLM and LiteRT ran the same {v['samples']} inputs, {v['data']}, and differ by at most
  {v['max_quanta_diff']} {quanta} ({v['exact_fraction']:.1%} of the output values identical).
- Flash: the model takes {len(self.data):,} bytes; TFLM's code and your application come on top.

## Limits

Flashing a board needs its vendor's toolchain (Arduino, ESP-IDF, pico-sdk, STM32Cube) and the TFLM sources
(the tflite-micro repository, or the board's TFLM library): this folder holds verified sources and sizes,
not firmware. The figures were measured with TFLM's reference kernels on a 64-bit host.
"""


_C_FIELDS = {"int8": "int8", "uint8": "uint8", "int16": "i16", "int32": "i32", "float32": "f"}


def _offset(zero_point: int, sign: str) -> str:
    """' + 3' / ' - 3' for adding (sign '+') or removing (sign '-') a zero point, '' for 0."""
    value = zero_point if sign == "+" else -zero_point
    return "" if value == 0 else f" {'+' if value > 0 else '-'} {abs(value)}"


def _write_all(directory: Path, contents: Dict[str, str]) -> None:
    """Every file under a temporary name first, then each renamed into place: no half-written file remains."""
    directory.mkdir(parents=True, exist_ok=True)
    staged = []
    try:
        for name, text in contents.items():
            handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
            staged.append((Path(temporary), directory / name))
        for temporary, final in staged:
            os.chmod(temporary, 0o644)
            os.replace(temporary, final)
    finally:
        for temporary, _ in staged:
            if temporary.exists():
                temporary.unlink()


# ---------------------------------------------------------------------------------------------------------------
# Helpers

def tflite_micro_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("tflite-micro")
    except metadata.PackageNotFoundError:
        return "not installed"


def require_tflite_micro() -> None:
    """BackendNotInstalled, with the pip command, unless tflite-micro imports: the check before a long conversion."""
    _runtime()


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as error:
        raise BackendNotInstalled(f"TensorFlow Lite Micro export needs the tflite-micro package ({error}): "
                                  f"{INSTALL_HINT}") from None
    return runtime


def _schema():
    _runtime()
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _model_bytes(model: Union[bytes, bytearray, os.PathLike, str]) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    path = Path(model)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    return path.read_bytes()


def _enum_names(enum_class) -> Dict[int, str]:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")
            and isinstance(value, int)}


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _round_up(value: float, alignment: int) -> int:
    return int(math.ceil(value / alignment) * alignment)


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
