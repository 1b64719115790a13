"""`python -m edgeml_runtime bench --per-op` and edgeml_runtime.profiling: per-operator times from ONNX
Runtime's profiler, real sessions and real traces; .tflite models get a plain note instead of figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edgeml_runtime.bench import benchmark
from edgeml_runtime.profiling import CONSISTENT_WITHIN, TFLITE_NOTE, add_per_op, per_op_profile, summarize_trace

from tests.support.cli import runtime_cli
from tests.support.marks import model_params, require_backend_for

MLP_NODES = {"MatMul", "Add", "Relu", "Softmax"}  # what tf2onnx made of Dense(16, relu) + Dense(4, softmax)


@model_params("mlp_fp32.onnx")
def test_every_node_of_the_model_is_timed_with_its_operator_type(data_dir, model_file):
    profile = per_op_profile(data_dir / model_file, threads=1, runs=20, warmup=3)
    assert profile["runs"] == 20  # the warm-up runs are left out
    operators = profile["operators"]
    assert {row["op_type"] for row in operators} <= MLP_NODES and "MatMul" in {row["op_type"] for row in operators}
    assert all(row["node"] and not row["node"].endswith("_kernel_time") for row in operators)
    totals = [row["total_us"] for row in operators]
    assert totals == sorted(totals, reverse=True)
    for row in operators:
        assert row["mean_us"] == pytest.approx(row["total_us"] / 20, abs=1e-3) and row["median_us"] >= 0
    assert 0 < profile["sum_ms"] <= profile["session_run_ms"] * 2  # kernels are part of ORT's whole run


def test_a_trace_is_summed_per_node_without_its_warm_up_runs():
    """summarize_trace on a hand-written trace: runs found by their model_run events, node events outside a
    kept run (warm-up) ignored, medians per run."""
    def run(ts, dur):
        return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}

    def node(name, op, ts, dur):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    events = [run(0, 100), node("conv", "Conv", 10, 90),  # warm-up
              run(200, 50), node("conv", "Conv", 205, 30), node("relu", "Relu", 240, 5),
              run(300, 50), node("conv", "Conv", 305, 40), node("relu", "Relu", 346, 3),
              run(400, 60), node("conv", "Conv", 405, 50), node("relu", "Relu", 456, 4),
              {"cat": "Node", "name": "conv_fence_before", "ts": 404, "dur": 1}]
    summary = summarize_trace(events, skip_runs=1)
    assert summary["runs"] == 3
    conv, relu = summary["operators"]
    assert (conv["node"], conv["op_type"], conv["total_us"], conv["median_us"]) == ("conv", "Conv", 120.0, 40.0)
    assert (relu["node"], relu["total_us"], relu["mean_us"], relu["median_us"]) == ("relu", 12.0, 4.0, 4.0)
    assert summary["sum_ms"] == pytest.approx(0.043)  # per-run sums 35, 43, 54 µs: median 43
    assert summary["session_run_ms"] == pytest.approx(0.05)


def conv_model(path):
    """A convolutional network whose operators do real work (five 3x3 convolutions, 32 channels, 64x64):
    milliseconds per run, against tens of µs of fixed cost per run. Built with `onnx` (skipped without it)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    channels, nodes, initializers = 32, [], []
    previous = "image"
    for index in range(5):
        inputs = 3 if index == 0 else channels
        weights = (rng.normal(size=(channels, inputs, 3, 3)) * 0.1).astype(np.float32)
        weight = numpy_helper.from_array(weights, f"w{index}")
        bias = numpy_helper.from_array(np.zeros(channels, np.float32), f"b{index}")
        initializers += [weight, bias]
        nodes += [helper.make_node("Conv", [previous, f"w{index}", f"b{index}"], [f"c{index}"], pads=[1, 1, 1, 1],
                                   name=f"conv{index}"),
                  helper.make_node("Relu", [f"c{index}"], [f"r{index}"], name=f"relu{index}")]
        previous = f"r{index}"
    nodes.append(helper.make_node("GlobalAveragePool", [previous], ["pooled"], name="pool"))
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])
    pooled = helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, channels, 1, 1])
    graph = helper.make_graph(nodes, "convs", [image], [pooled], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def test_the_operators_add_up_to_p50_on_a_model_whose_operators_do_the_work(tmp_path):
    """The sum of the operators' times per run against the benchmark's p50, on a model where operators are
    nearly all of a run. Tolerance CONSISTENT_WITHIN (15%, what the issue asks): what remains outside the
    operators here is the run's fixed cost (tens of µs of a run of milliseconds) and the profiler's own cost
    per node (a few µs, on 11 nodes). The two figures come from two sessions measured one after the other
    on a shared machine whose speed swings with its neighbours' load, so up to three attempts are made: a
    consistent implementation lands in the band, a broken one (warm-up runs counted, ms taken for µs, nodes
    counted twice) never does. Tiny models are not held to it (see edgeml_runtime.profiling)."""
    require_backend_for("x.onnx")
    path = conv_model(tmp_path / "convs.onnx")
    ratios = []
    for _ in range(3):
        result = benchmark(path, threads=1, runs=20, warmup=3, min_seconds=0.3).to_dict()
        add_per_op(result, warmup=3)
        summary = result["per_op_summary"]
        assert summary["p50_ms"] == result["latency_ms"]["p50"] and summary["runs"] == result["runs"]
        ratios.append(summary["sum_vs_p50"])
        if abs(ratios[-1] - 1.0) <= CONSISTENT_WITHIN:
            break
    assert abs(ratios[-1] - 1.0) <= CONSISTENT_WITHIN, ratios
    # Nodes as ONNX Runtime runs them after its graph optimizations: Relu fused into Conv, layout reorders added.
    assert result["per_op"][0]["op_type"] in ("Conv", "FusedConv")  # the convolutions are the time
    assert sum(row["share"] for row in result["per_op"]) == pytest.approx(ratios[-1], abs=0.01)


@model_params("mlp_fp32.onnx")
def test_runtime_cli_bench_per_op_json_and_text(data_dir, model_file):
    done = runtime_cli("bench", data_dir / model_file, "--per-op", "--threads", "1", "--runs", "20",
                       "--min-seconds", "0", "--json", check_exit=0)
    result = json.loads(done.stdout)
    assert isinstance(result["per_op"], list) and result["per_op"]
    row = result["per_op"][0]
    assert set(row) == {"node", "op_type", "total_us", "mean_us", "median_us", "share"}
    assert result["per_op_summary"]["p50_ms"] == result["latency_ms"]["p50"]
    assert result["per_op_summary"]["runs"] == 20
    text = runtime_cli("bench", data_dir / model_file, "--per-op", "--threads", "1", "--runs", "20",
                       "--min-seconds", "0", check_exit=0).stdout
    assert "per-operator time" in text and "of p50" in text and "MatMul" in text


@model_params("mlp_int8.tflite")
def test_runtime_cli_says_plainly_that_tflite_has_no_per_op_profiler(data_dir, model_file):
    done = runtime_cli("bench", data_dir / model_file, "--per-op", "--runs", "5", "--min-seconds", "0", "--json",
                       check_exit=0)
    result = json.loads(done.stdout)
    assert result["per_op"] is None and result["per_op_note"] == TFLITE_NOTE
    assert "LiteRT" in TFLITE_NOTE and "no per-operator profiler" in TFLITE_NOTE
    text = runtime_cli("bench", data_dir / model_file, "--per-op", "--runs", "5", "--min-seconds", "0",
                       check_exit=0).stdout
    notes = [line for line in text.splitlines() if "per-operator" in line]
    assert notes == [TFLITE_NOTE]
