"""`--explain`: which layer costs an int8 artifact its accuracy.

Per-tensor statistics (what tf.lite.experimental.QuantizationDebugger reports: rmse/scale per tensor) point at the
wrong layer when the harm sits in a layer's *output*: one inflated channel makes every int8 step of that tensor so
coarse that the other channels vanish, yet each layer's own error looks ordinary. So each candidate layer is
measured by what it does to the final output: the same calibration is quantized again with that layer, and the
tensor it produces, kept in float (the layer plus the ops reading its output: there the tensor would be quantized
again), and the output error against the original is compared with the plain int8 artifact's. A layer's "share" is
the part of the int8 error that goes away when it stays in float.

Candidates are the quantized compute layers (Dense, Conv, DepthwiseConv...). Models with more than `TOP_K` of them
are narrowed first by a cheap statistic (the quantization noise of each layer's weights and output activation
relative to its typical channel, from one run of the float Keras model); the rest are not measured. Calibration is
done once: re-quantizing a calibrated model takes a fraction of a second in both formats (see
`tflite_export.quantize_calibrated`, `onnx_quantize.StaticQuantizer`).

The names are the original Keras layer names where the exported graph carries them (TFLite tensor names and ONNX
node names are paths like `sequential_1/dense_1/MatMul`, a layer's name with a `_1` suffix from tracing).
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from edgeml_converters.calibration import Dataset, evenly

__all__ = [
    "Candidate",
    "Explainer",
    "Graph",
    "LayerNames",
    "Node",
    "ONNX_OPS",
    "TFLITE_OPS",
    "onnx_graph",
    "output_error",
    "quantization_noise",
    "tflite_graph",
]

TOP_K = 8  # layers measured one by one; more candidates are narrowed to these by `quantization_noise`
TOP_LAYERS = 10  # rows in the manifest's validation.layers
MAX_SAMPLES = 200  # validation samples each trial runs
MAX_SUGGESTED = 3  # layers at most in the suggested exclusion list
FOLLOW_DEPTH = 4  # how far past ops that only move or pool a tensor its readers are looked for

KERAS_COMPUTE = ("Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
                 "SeparableConv1D", "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
TFLITE_OPS = frozenset({"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "TRANSPOSE_CONV",
                        "BATCH_MATMUL"})
ONNX_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
ERROR_METRIC = "relative output error ||artifact - original|| / ||original|| on the validation data"


# --- the graph of a converted model, its ops named by Keras layer ----------------------------------------------


@dataclass(frozen=True)
class Node:
    id: str  # what the quantizer takes to keep it in float: TFLite output tensor name, ONNX node name
    op: str
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    layer: Optional[str]  # the Keras layer it comes from, when known


@dataclass
class Graph:
    nodes: List[Node]
    compute_ops: frozenset

    def __post_init__(self):
        self._readers: Dict[str, List[Node]] = {}
        for node in self.nodes:
            for tensor in node.inputs:
                self._readers.setdefault(tensor, []).append(node)

    def readers(self, node: Node) -> List[Node]:
        return [reader for tensor in node.outputs for reader in self._readers.get(tensor, []) if reader is not node]


@dataclass(frozen=True)
class Candidate:
    """One layer to measure: its ops, and what stays in float when it is measured (it, and the ops reading its
    output up to the next compute layer)."""

    name: str
    op: str
    nodes: Tuple[str, ...]
    float_nodes: Tuple[str, ...]
    float_layers: Tuple[str, ...]


class LayerNames:
    """Keras layer names, and which of them a graph name (`model_1/conv_2_1/Conv2D;...`) comes from."""

    def __init__(self, model=None):
        self.names: List[str] = []
        self.compute: Set[str] = set()
        self.model_name = getattr(model, "name", None)
        for layer in _keras_layers(model):
            self.names.append(layer.name)
            if type(layer).__name__ in KERAS_COMPUTE:
                self.compute.add(layer.name)
        self._known = set(self.names)
        self.suffixed = False

    def detect_suffix(self, texts: Iterable[str]) -> None:
        """Whether the exported names carry a tracing suffix (`sequential_1/dense_1`): then `dense_1` is layer
        `dense`, else layer `dense_1`."""
        if self.model_name:
            pattern = re.compile(re.escape(self.model_name) + r"_\d+")
            self.suffixed = any(pattern.fullmatch(part) for text in texts for part in _parts(text))

    def layer_of(self, text: str) -> Optional[str]:
        found = [name for part in _parts(text) for name in self._matches(part)]
        for name in found:
            if name in self.compute:
                return name
        return found[0] if found else None

    def _matches(self, part: str) -> List[str]:
        exact = [part] if part in self._known else []
        match = re.fullmatch(r"(.+)_\d+", part)
        base = [match.group(1)] if match and match.group(1) in self._known else []
        return base + exact if self.suffixed else exact + base


def tflite_graph(model: bytes, names: LayerNames) -> Graph:
    """The ops of a (calibrated, float) .tflite, each named by its first output tensor."""
    interpreter = _tflite_interpreter(model)
    tensors = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # noqa: SLF001 - the only op listing LiteRT's Python API has
    names.detect_suffix(tensors.values())
    nodes = []
    for op in ops:
        outputs = tuple(tensors[i] for i in op["outputs"] if i >= 0)
        if not outputs:
            continue
        inputs = tuple(tensors[i] for i in op["inputs"] if i >= 0)
        nodes.append(Node(outputs[0], op["op_name"], inputs, outputs, names.layer_of(outputs[0])))
    return Graph(nodes, TFLITE_OPS)


def onnx_graph(path: Path, names: LayerNames) -> Graph:
    import onnx

    model = onnx.load(str(path))
    names.detect_suffix(node.name for node in model.graph.node)
    nodes = [Node(node.name, node.op_type, tuple(node.input), tuple(node.output), names.layer_of(node.name))
             for node in model.graph.node if node.name]
    return Graph(nodes, ONNX_OPS)


def candidates(graph: Graph) -> List[Candidate]:
    """The compute layers of `graph`, in graph order, each with what stays in float when it is measured."""
    groups: Dict[str, List[Node]] = {}
    for node in graph.nodes:
        groups.setdefault(_key(node), []).append(node)
    found, seen = [], set()
    for node in graph.nodes:
        key = _key(node)
        if node.op not in graph.compute_ops or key in seen:
            continue
        seen.add(key)
        own = groups[key] if node.layer else [node]
        kept, layers = {n.id for n in own}, [key]
        for reader in _readers_up_to_compute(graph, own):
            group = groups[_key(reader)] if reader.layer else [reader]
            kept.update(n.id for n in group)
            if reader.op in graph.compute_ops and _key(reader) not in layers:
                layers.append(_key(reader))
        ordered = tuple(n.id for n in graph.nodes if n.id in kept)
        found.append(Candidate(key, node.op, tuple(n.id for n in own), ordered, tuple(layers)))
    return found


def _readers_up_to_compute(graph: Graph, own: List[Node]) -> List[Node]:
    """The ops reading `own`'s outputs, followed through ops that only activate, move or pool a tensor (its range
    problem travels with it) up to and including the next compute ops."""
    own_ids = {n.id for n in own}
    found, frontier = [], [r for n in own for r in graph.readers(n) if r.id not in own_ids]
    for _ in range(FOLLOW_DEPTH):
        following = []
        for reader in frontier:
            if reader.id in own_ids or reader in found:
                continue
            found.append(reader)
            if reader.op not in graph.compute_ops:
                following.extend(graph.readers(reader))
        frontier = following
        if not frontier:
            break
    return found


def _key(node: Node) -> str:
    return node.layer or _short(node.id)


def _short(name: str) -> str:
    return name.split(";")[0]


# --- measuring ------------------------------------------------------------------------------------------------


def output_error(reference: Dict[str, np.ndarray], outputs: Dict[str, np.ndarray]) -> float:
    """||outputs - reference|| / ||reference|| over every output value."""
    difference = total = 0.0
    for name, expected in reference.items():
        expected = np.asarray(expected, dtype=np.float64)
        actual = np.asarray(outputs[name], dtype=np.float64).reshape(expected.shape)
        difference += float(np.sum((actual - expected) ** 2))
        total += float(np.sum(expected ** 2))
    return float(np.sqrt(difference / total)) if total > 0 else float(np.sqrt(difference))


def top1(reference: Dict[str, np.ndarray], outputs: Dict[str, np.ndarray]) -> Optional[float]:
    values = [float(np.mean(np.asarray(expected).argmax(axis=1) == np.asarray(outputs[name]).argmax(axis=1)))
              for name, expected in reference.items() if np.ndim(expected) == 2 and np.shape(expected)[1] >= 2]
    return min(values) if values else None


@dataclass
class Trial:
    """One quantized variant's outputs on the explain data, and how far they are from the original."""

    float_layers: Tuple[str, ...]
    error: float
    agreement: Optional[float]
    outputs: Dict[str, np.ndarray] = field(repr=False)


class Explainer:
    """Measures int8 variants of one artifact that keep some layers in float.

    `build(float_nodes, path)` writes the variant (node ids as in `graph`); `run(path, data)` returns its outputs.
    """

    def __init__(self, graph: Graph, build: Callable[[Sequence[str], Path], None],
                 run: Callable[[Path, Dataset], Dict[str, np.ndarray]], validation: Dataset,
                 reference: Dict[str, np.ndarray], suffix: str, noise: Optional[Dict[str, float]] = None):
        self.graph, self.build, self.run, self.suffix = graph, build, run, suffix
        chosen = evenly(validation.samples, MAX_SAMPLES)
        self.data = validation.take(chosen)
        self.reference = {name: np.asarray(values)[chosen] for name, values in reference.items()}
        self.candidates = candidates(graph)
        self.noise = noise or {}
        self._scratch = tempfile.TemporaryDirectory(prefix="edgeml-explain-")
        self._count = 0
        self.base: Optional[Trial] = None
        self.ranking: Optional[List[dict]] = None
        self.seconds = 0.0
        self.preselected: Optional[str] = None

    def close(self) -> None:
        self._scratch.cleanup()

    def trial(self, float_nodes: Sequence[str], float_layers: Sequence[str] = ()) -> Trial:
        self._count += 1
        path = Path(self._scratch.name) / f"variant{self._count}{self.suffix}"
        self.build(list(float_nodes), path)
        outputs = self.run(path, self.data)
        path.unlink(missing_ok=True)
        return Trial(tuple(float_layers), output_error(self.reference, outputs), top1(self.reference, outputs),
                     outputs)

    def candidate(self, name: str) -> Optional[Candidate]:
        return next((c for c in self.candidates if c.name == name), None)

    def rank(self, progress: Optional[Callable[[int, int], None]] = None) -> List[dict]:
        """Every measured candidate, worst first: its output error with it kept in float, and its share."""
        if self.ranking is not None:
            return self.ranking
        started = time.perf_counter()
        self.base = self.trial(())
        measured = self._preselect()
        rows = []
        for index, candidate in enumerate(measured, start=1):
            trial = self.trial(candidate.float_nodes, candidate.float_layers)
            reduction = max(0.0, self.base.error - trial.error)
            rows.append({
                "name": candidate.name,
                "op": candidate.op,
                "error_in_float": round(trial.error, 6),
                "error_reduction": round(reduction, 6),
                "share": round(reduction / self.base.error, 4) if self.base.error > 0 else 0.0,
                "top1_agreement_in_float": trial.agreement,
                "kept_in_float": list(candidate.float_layers),
            })
            if progress:
                progress(index, len(measured))
        rows.sort(key=lambda row: (-row["error_reduction"], row["name"]))
        self.ranking = rows
        self.seconds = time.perf_counter() - started
        return rows

    def _preselect(self) -> List[Candidate]:
        if len(self.candidates) <= TOP_K:
            return list(self.candidates)
        if self.noise:
            ordered = sorted(self.candidates, key=lambda c: -self.noise.get(c.name, 0.0))
            self.preselected = (f"top {TOP_K} of {len(self.candidates)} layers by weight + activation quantization "
                                "noise (float model, one run)")
        else:
            ordered = list(self.candidates)
            self.preselected = f"first {TOP_K} of {len(self.candidates)} layers (no Keras model to pre-rank them)"
        chosen = {c.name for c in ordered[:TOP_K]}
        return [c for c in self.candidates if c.name in chosen]

    def float_set(self, names: Sequence[str]) -> Tuple[List[str], List[str]]:
        """(node ids, layer names) kept in float when the named candidates are."""
        nodes: List[str] = []
        layers: List[str] = []
        for name in names:
            candidate = self.candidate(name)
            if candidate is None:
                continue
            nodes += [n for n in candidate.float_nodes if n not in nodes]
            layers += [layer for layer in candidate.float_layers if layer not in layers]
        return nodes, layers

    def helpful(self) -> List[str]:
        """Measured layers whose float version removes some error, worst first."""
        return [row["name"] for row in self.rank() if row["error_reduction"] > 0]

    def suggest(self, good_enough: Callable[[Trial], bool], limit: int = MAX_SUGGESTED) -> Optional[dict]:
        """The fewest top-ranked layers whose float version is `good_enough` (tried 1, 2, ... `limit` of them)."""
        names = self.helpful()[:limit]
        for count in range(1, len(names) + 1):
            nodes, layers = self.float_set(names[:count])
            trial = self.trial(nodes, layers)
            if good_enough(trial):
                return {"layers": names[:count], "kept_in_float": layers, "error": round(trial.error, 6),
                        "top1_agreement": trial.agreement}
        return None

    def report(self, suggestion: Optional[dict]) -> dict:
        """What goes into the artifact's `validation`: `layers` (top TOP_LAYERS), `explain`, `suggested_float`."""
        ranking = self.rank()
        explain = {"metric": ERROR_METRIC, "int8_error": round(self.base.error, 6),
                   "int8_top1_agreement": self.base.agreement, "samples": self.data.samples,
                   "candidates": len(self.candidates), "measured": len(ranking), "seconds": round(self.seconds, 2)}
        if self.preselected:
            explain["preselected"] = self.preselected
        return {"layers": ranking[:TOP_LAYERS], "explain": explain,
                "suggested_float": (suggestion or {}).get("kept_in_float", []),
                **({"suggestion": suggestion} if suggestion else {})}


# --- the cheap pre-ranking ----------------------------------------------------------------------------------------


def quantization_noise(model, names: Sequence[str], data: Dataset, samples: int = 32) -> Dict[str, float]:
    """Per layer: int8 rounding noise of its weights (per output channel) and of its output tensor (one scale for
    the whole tensor), each relative to the typical channel's signal power. One inflated channel makes the output's
    noise dwarf the typical channel. {} when the Keras model cannot be probed."""
    if model is None or not names:
        return {}
    try:
        import keras

        probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
        feeds = [data.arrays[_input_name(tensor, index, data)][:samples] for index, tensor in enumerate(model.inputs)]
        outputs = probe(feeds, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    except Exception:  # a subclassed model, nested inputs: no pre-ranking, measured in graph order instead
        return {}
    scores = {}
    for name, output in zip(names, outputs):
        values = np.asarray(output, dtype=np.float64)
        channels = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(-1, 1)
        typical = float(np.median(np.var(channels, axis=0))) + 1e-12
        step = (float(values.max()) - float(values.min())) / 255.0
        score = step ** 2 / 12.0 / typical
        kernels = [w for w in model.get_layer(name).get_weights() if np.ndim(w) >= 2]
        if kernels:
            kernel = np.asarray(kernels[0], dtype=np.float64)
            per_channel = kernel.reshape(-1, kernel.shape[-1])
            steps = np.max(np.abs(per_channel), axis=0) / 127.0
            power = np.mean(per_channel ** 2, axis=0) + 1e-12
            score += float(np.median(steps ** 2 / 12.0 / power))
        scores[name] = score
    return scores


def _input_name(tensor, index: int, data: Dataset) -> str:
    """The data's array for the model's input `index` (by name, else by position)."""
    name = str(getattr(tensor, "name", "")).split(":")[0]
    return name if name in data.arrays else list(data.arrays)[index]


def _keras_layers(model) -> list:
    if model is None:
        return []
    try:
        flatten = getattr(model, "_flatten_layers", None)
        layers = list(flatten(include_self=False, recursive=True)) if flatten else list(model.layers)
    except Exception:
        return []
    return [layer for layer in layers if getattr(layer, "name", None)]


def _parts(text: str) -> List[str]:
    return [part.split(":")[0] for part in re.split(r"[;/]", text) if part]


def _tflite_interpreter(model: bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the converters install TensorFlow, whose tf.lite reads the same files
        from edgeml_converters.tensorflow_env import import_tensorflow

        Interpreter = import_tensorflow().lite.Interpreter  # noqa: N806
    return Interpreter(model_content=model)
