"""ONNX graphs built with the `onnx` helper API, laid out as PyTorch exports them (NCHW), for the ONNX-source
tests and benchmarks. No torch: the weights are fixed (seeded) random features plus a last layer fitted in
closed form (ridge regression) on scikit-learn's 8x8 digits, so every classifier is a real one (about 90 %+
accurate) and int8 gates on it mean something.

    graph = nchw_cnn(path)                 # image (1, 1, 8, 8) in 0..1 -> probabilities (1, 10): Resize, Conv+BN+ReLU,
                                           # MaxPool, depthwise Conv, residual Add, AveragePool, Flatten, Gemm, Softmax
    graph = mlp(path)                      # features (N, 64) -> probabilities (N, 10), N symbolic
    graph = two_input_symbolic_batch(path) # image (batch, 1, 8, 8) and stats (batch, 8) -> probabilities (batch, 10)
    graph = with_external_data(folder)     # the MLP with its weights in folder/weights.bin
    graph = with_external_data(folder, location="../outside.bin")  # weights outside the model's folder
    graph = unsupported_op(path)           # ai.onnx.ml Scaler + MLP: ONNX Runtime runs it, onnx2tf has no Scaler
    graph = unknown_op(path)               # an operator from a domain nobody implements: ONNX Runtime refuses it
    path = corrupt(path)                   # bytes that are not an ONNX protobuf

Each builder writes the .onnx and returns an `OnnxGraph`: `.path`, `.inputs` (name -> shape with None for a
symbolic dimension), `.calibration` and `.test` (name -> float32 array, batch first, in the graph's own NCHW
layout), `.labels` (test labels) and `.unsupported` (the operator no TFLite route converts, if any).
`write_npz(graph, path)` saves the calibration set keyed by input name. numpy, onnx and scikit-learn are
imported inside the functions; standard library only at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

__all__ = [
    "OPSET",
    "OnnxGraph",
    "corrupt",
    "mlp",
    "nchw_cnn",
    "two_input_symbolic_batch",
    "unknown_op",
    "unsupported_op",
    "with_external_data",
    "write_npz",
]

OPSET = 17  # what torch.onnx.export writes by default in recent releases
CLASSES = 10
CALIBRATION_SAMPLES = 400  # > the default --calibration-samples 300: the rest is held back for validation
TEST_SAMPLES = 256


@dataclass
class OnnxGraph:
    path: Path
    inputs: Dict[str, Tuple[Optional[int], ...]]
    calibration: Dict[str, object]
    test: Dict[str, object]
    labels: object
    output: str = "probabilities"
    unsupported: Optional[str] = None
    extra: Dict[str, object] = field(default_factory=dict)


def write_npz(graph: OnnxGraph, path: Path, which: str = "calibration") -> Path:
    """The graph's calibration (or test) inputs as one .npz keyed by input name, as `--calibration` takes it."""
    import numpy as np

    np.savez(path, **getattr(graph, which))
    return Path(path)


# ---------------------------------------------------------------- data


def _digits():
    """Digits as NCHW images in 0..1, split (seeded) into a fitting set and a held-out test set."""
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype("float32") / 16.0)[:, None, :, :]
    y = bunch.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    test, fit = order[:TEST_SAMPLES], order[TEST_SAMPLES:]
    return x[fit], y[fit], x[test], y[test]


def _row_stats(images):
    """The second input of the two-input graph: per-row means of the image (8 values per sample)."""
    return images[:, 0, :, :].mean(axis=2).astype("float32")


# ---------------------------------------------------------------- graph building


class _Graph:
    """Collects nodes and initializers; `fit_head` runs the graph so far in ONNX Runtime to fit the last layer."""

    def __init__(self, seed: int):
        import numpy as np

        self.rng = np.random.default_rng(seed)
        self.nodes, self.initializers, self.inputs = [], [], []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, prefix: str, array) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def input(self, name: str, shape) -> str:
        from onnx import TensorProto, helper

        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    def node(self, op: str, inputs, domain: str = "", **attributes) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=out, domain=domain, **attributes))
        return out

    # -- layers, as torch.onnx.export writes them (Conv with bias, BatchNormalization kept unfused: eval mode
    #    with do_constant_folding=False, or a model exported for training-aware tools)
    def conv(self, x: str, c_in: int, c_out: int, kernel: int, group: int = 1, bias: bool = True) -> str:
        import numpy as np

        fan_in = (c_in // group) * kernel * kernel
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), size=(c_out, c_in // group, kernel, kernel))
        args = [x, self.const("w", w.astype("float32"))]
        if bias:
            args.append(self.const("b", self.rng.normal(0, 0.05, size=c_out).astype("float32")))
        pad = kernel // 2
        return self.node("Conv", args, kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[1, 1], group=group)

    def batch_norm(self, x: str, channels: int) -> str:
        gamma = self.rng.uniform(0.8, 1.2, size=channels).astype("float32")
        beta = self.rng.normal(0, 0.1, size=channels).astype("float32")
        mean = self.rng.normal(0, 0.1, size=channels).astype("float32")
        var = self.rng.uniform(0.5, 1.5, size=channels).astype("float32")
        args = [x, self.const("gamma", gamma), self.const("beta", beta), self.const("mean", mean),
                self.const("var", var)]
        return self.node("BatchNormalization", args, epsilon=1e-5)

    def dense(self, x: str, n_in: int, n_out: int) -> str:
        import numpy as np

        w = self.rng.normal(0, np.sqrt(2.0 / n_in), size=(n_out, n_in)).astype("float32")  # torch Linear: (out, in)
        b = self.rng.normal(0, 0.05, size=n_out).astype("float32")
        return self.node("Gemm", [x, self.const("w", w), self.const("b", b)], transB=1)

    def model(self, outputs, opset_imports=None, output_shape=None):
        from onnx import TensorProto, helper

        value_infos = [helper.make_tensor_value_info(name, TensorProto.FLOAT, output_shape) for name in outputs]
        graph = helper.make_graph(self.nodes, "edgeml_test_graph", self.inputs, value_infos, self.initializers)
        opsets = opset_imports or [helper.make_opsetid("", OPSET)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="pytorch", producer_version="2.5.0")
        model.ir_version = 8
        return model

    def features(self, feature: str, feeds: Dict[str, object], opset_imports=None):
        """Runs the graph up to `feature` in ONNX Runtime (fp32) on `feeds`."""
        import onnxruntime

        proto = self.model([feature], opset_imports).SerializeToString()
        session = onnxruntime.InferenceSession(proto, providers=["CPUExecutionProvider"])
        return session.run([feature], feeds)[0]

    def fit_head(self, feature: str, fit_feeds, labels, temperature: float = 8.0, opset_imports=None) -> str:
        """A Gemm fitted by ridge regression from `feature` to one-hot labels, scaled so the softmax is peaked
        (a classifier-like output, not ten near-equal probabilities), followed by the Softmax."""
        import numpy as np

        phi = self.features(feature, fit_feeds, opset_imports).astype("float64")
        phi = phi.reshape(len(phi), -1)
        design = np.hstack([phi, np.ones((len(phi), 1))])
        target = np.eye(CLASSES)[labels]
        ridge = 1e-1 * np.eye(design.shape[1])
        solution = np.linalg.solve(design.T @ design + ridge, design.T @ target) * temperature
        w = solution[:-1].T.astype("float32")  # (classes, features)
        b = solution[-1].astype("float32")
        logits = self.node("Gemm", [feature, self.const("head_w", w), self.const("head_b", b)], transB=1)
        return self.node("Softmax", [logits], axis=-1)


def _save(builder: _Graph, batch, path: Path, opset_imports=None):
    """Renames the last node's output to "probabilities" (shape (batch, 10)), checks and writes the model."""
    import onnx

    builder.nodes[-1].output[0] = "probabilities"
    model = builder.model(["probabilities"], opset_imports, [batch, CLASSES])
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return model


# ---------------------------------------------------------------- the graphs


def nchw_cnn(path: Path) -> OnnxGraph:
    """A small NCHW CNN with batch fixed at 1 (torch.onnx.export's default without dynamic_axes)."""
    x_fit, y_fit, x_test, y_test = _digits()
    g = _Graph(seed=1)
    x = g.input("image", (1, 1, 8, 8))
    # nn.Upsample(scale_factor=2), mode nearest: what PyTorch writes
    empty_roi = g.const("roi", _np().zeros(0, dtype="float32"))
    scales = g.const("scales", _np().array([1, 1, 2, 2], dtype="float32"))
    h = g.node("Resize", [x, empty_roi, scales], mode="nearest", coordinate_transformation_mode="asymmetric",
               nearest_mode="floor")                                            # (1, 1, 16, 16)
    h = g.node("Relu", [g.batch_norm(g.conv(h, 1, 16, 3, bias=False), 16)])       # (1, 16, 16, 16)
    h = g.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])              # (1, 16, 8, 8)
    shortcut = h
    h = g.node("Relu", [g.batch_norm(g.conv(h, 16, 16, 3, group=16, bias=False), 16)])  # depthwise
    h = g.batch_norm(g.conv(h, 16, 16, 1, bias=False), 16)                      # pointwise
    h = g.node("Relu", [g.node("Add", [h, shortcut])])                          # residual
    h = g.node("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2])          # (1, 16, 4, 4)
    feature = g.node("Flatten", [h], axis=1)                                     # (1, 256), NCHW order
    # The feature graph has batch 1: fit on a batch-N copy of it (same nodes, symbolic batch).
    g.inputs[0] = _input_info("image", ("N", 1, 8, 8))
    g.fit_head(feature, {"image": x_fit}, y_fit)
    g.inputs[0] = _input_info("image", (1, 1, 8, 8))
    _save(g, 1, path)
    return OnnxGraph(Path(path), {"image": (1, 1, 8, 8)}, {"image": x_fit[:CALIBRATION_SAMPLES]},
                     {"image": x_test}, y_test)


def _mlp_graph(seed: int = 2, scaler: bool = False):
    x_fit, y_fit, x_test, y_test = _digits()
    flat_fit, flat_test = x_fit.reshape(len(x_fit), 64), x_test.reshape(len(x_test), 64)
    g = _Graph(seed=seed)
    h = g.input("features", ("N", 64))
    opsets = None
    if scaler:
        # What sklearn-onnx writes for a StandardScaler in front of a network
        from onnx import helper

        opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 3)]
        mean = flat_fit.mean(axis=0)
        scale = 1.0 / (flat_fit.std(axis=0) + 0.1)
        h = g.node("Scaler", [h], domain="ai.onnx.ml", offset=[float(v) for v in mean],
                   scale=[float(v) for v in scale])
    h = g.node("Relu", [g.dense(h, 64, 128)])
    h = g.node("Relu", [g.dense(h, 128, 96)])
    g.fit_head(h, {"features": flat_fit}, y_fit, opset_imports=opsets)
    return g, opsets, (flat_fit, flat_test, y_test)


def mlp(path: Path) -> OnnxGraph:
    """features (N, 64) -> Gemm/ReLU x2 -> Gemm -> Softmax, N symbolic (dynamic_axes={"features": {0: "N"}})."""
    g, opsets, (flat_fit, flat_test, y_test) = _mlp_graph()
    _save(g, "N", path, opsets)
    return OnnxGraph(Path(path), {"features": (None, 64)}, {"features": flat_fit[:CALIBRATION_SAMPLES]},
                     {"features": flat_test}, y_test)


def two_input_symbolic_batch(path: Path) -> OnnxGraph:
    """Two inputs sharing the symbolic batch dimension "batch": an NCHW image through a conv branch and 8 row
    statistics through a dense branch, added, then a fitted head."""
    x_fit, y_fit, x_test, y_test = _digits()
    g = _Graph(seed=3)
    image = g.input("image", ("batch", 1, 8, 8))
    stats = g.input("stats", ("batch", 8))
    conv = g.node("Relu", [g.batch_norm(g.conv(image, 1, 8, 3), 8)])              # (batch, 8, 8, 8)
    conv = g.node("MaxPool", [conv], kernel_shape=[2, 2], strides=[2, 2])        # (batch, 8, 4, 4)
    conv = g.dense(g.node("Flatten", [conv], axis=1), 128, 48)
    dense = g.dense(stats, 8, 48)
    h = g.node("Relu", [g.node("Add", [conv, dense])])
    fit = {"image": x_fit, "stats": _row_stats(x_fit)}
    g.fit_head(h, fit, y_fit)
    _save(g, "batch", path)
    calibration = {name: value[:CALIBRATION_SAMPLES] for name, value in fit.items()}
    test = {"image": x_test, "stats": _row_stats(x_test)}
    return OnnxGraph(Path(path), {"image": (None, 1, 8, 8), "stats": (None, 8)}, calibration, test, y_test)


def with_external_data(folder: Path, location: str = "weights.bin", name: str = "model.onnx") -> OnnxGraph:
    """The MLP saved as folder/name with every initializer in one external file at `location` (relative to
    the folder as ONNX resolves it; "../outside.bin" points outside the model's folder, which a loader must
    refuse). The external file is written wherever `location` points."""
    import onnx
    from onnx import external_data_helper

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    g, opsets, (flat_fit, flat_test, y_test) = _mlp_graph()
    g.nodes[-1].output[0] = "probabilities"
    model = g.model(["probabilities"], opsets, ["N", CLASSES])
    data_path = folder / location
    data_path.parent.mkdir(parents=True, exist_ok=True)
    offset = 0
    with open(data_path, "wb") as blob:
        for tensor in model.graph.initializer:
            raw = tensor.raw_data or onnx.numpy_helper.to_array(tensor).tobytes()
            blob.write(raw)
            external_data_helper.set_external_data(tensor, location=location, offset=offset, length=len(raw))
            tensor.data_location = onnx.TensorProto.EXTERNAL
            tensor.ClearField("raw_data")
            offset += len(raw)
    # Written by hand (not onnx.save_model's external-data path) so a hostile location can be produced.
    (folder / name).write_bytes(model.SerializeToString())
    return OnnxGraph(folder / name, {"features": (None, 64)}, {"features": flat_fit[:CALIBRATION_SAMPLES]},
                     {"features": flat_test}, y_test, extra={"data": data_path})


def unsupported_op(path: Path) -> OnnxGraph:
    """The MLP behind an ai.onnx.ml Scaler (as sklearn-onnx exports a StandardScaler): valid ONNX that ONNX
    Runtime runs, but onnx2tf has no converter for Scaler, so the TFLite route must name it."""
    g, opsets, (flat_fit, flat_test, y_test) = _mlp_graph(seed=4, scaler=True)
    _save(g, "N", path, opsets)
    return OnnxGraph(Path(path), {"features": (None, 64)}, {"features": flat_fit[:CALIBRATION_SAMPLES]},
                     {"features": flat_test}, y_test, unsupported="Scaler")


def unknown_op(path: Path) -> OnnxGraph:
    """features (N, 64) -> FancyActivation (domain com.example.custom) -> ...: a custom operator without a
    kernel anywhere, so ONNX Runtime cannot load the model."""
    import onnx
    from onnx import helper

    x_fit, _, x_test, y_test = _digits()
    g = _Graph(seed=5)
    h = g.input("features", ("N", 64))
    h = g.node("FancyActivation", [g.dense(h, 64, 10)], domain="com.example.custom")
    h = g.node("Softmax", [h], axis=-1)
    g.nodes[-1].output[0] = "probabilities"
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.example.custom", 1)]
    model = g.model(["probabilities"], opsets, ["N", CLASSES])
    onnx.checker.check_model(model)  # unknown domains pass the checker: only a runtime finds out
    Path(path).write_bytes(model.SerializeToString())
    flat = x_fit.reshape(len(x_fit), 64)
    return OnnxGraph(Path(path), {"features": (None, 64)}, {"features": flat[:CALIBRATION_SAMPLES]},
                     {"features": x_test.reshape(len(x_test), 64)}, y_test, unsupported="FancyActivation")


def corrupt(path: Path) -> Path:
    """A file named .onnx whose bytes are not a ModelProto (a truncated download, say)."""
    Path(path).write_bytes(b"\x08\x08\x12\x07pytorch" + bytes(range(256)) * 4)
    return Path(path)


# ---------------------------------------------------------------- small helpers


def _np():
    import numpy

    return numpy


def _input_info(name: str, shape):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))
