"""Helpers for the device tests: tiny real ONNX models (the CLI runs through tests.support.cli)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_onnx_model(path: Path, seed: int) -> Path:
    """A 4 -> 3 dense layer with softmax, weights from `seed` (different seeds: different models)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probs"], axis=-1)],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 3])], [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime the profiles install (>= 1.16)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
