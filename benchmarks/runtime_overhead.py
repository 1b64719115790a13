"""Model.run vs the raw backend loop on the same model, interleaved in one run.

Target (issue 2): median overhead at most 5% on a MobileNet-sized model and at most 10 µs per call on a
tiny one. Each round times both loops back to back; the overhead and ratio are medians of the per-round
differences and ratios, so a slow patch of the shared machine hits both sides of a pair alike. Prints
the median µs per call too. Run: python -m benchmarks.runtime_overhead
"""

from __future__ import annotations

import statistics
import time

import edgeml_runtime as er
import numpy as np

from tests.support.models import TINY, mobilenet


def raw_litert_loop(path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=path.read_bytes(), num_threads=1)
    interpreter.allocate_tensors()
    (input_details,), (output_details,) = interpreter.get_input_details(), interpreter.get_output_details()

    def call(x):
        interpreter.set_tensor(input_details["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(output_details["index"])

    return call


def raw_onnx_loop(path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = onnxruntime.InferenceSession(path.read_bytes(), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def call(x):
        return session.run(None, {input_name: x})[0]

    return call


def time_calls(call, x, repeats):
    started = time.perf_counter()
    for _ in range(repeats):
        call(x)
    return (time.perf_counter() - started) / repeats * 1e6  # µs per call


def compare(label, path, fmt, repeats, rounds):
    model = er.load(path, threads=1)
    raw = raw_litert_loop(path) if fmt == "tflite" else raw_onnx_loop(path)
    shape = tuple(1 if dim is None else dim for dim in model.inputs[0].shape)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    np.testing.assert_allclose(next(iter(model.run(x).values())), raw(x), rtol=1e-6, atol=1e-6)
    edgeml_us, raw_us = [], []
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits both alike
        raw_us.append(time_calls(raw, x, repeats))
        edgeml_us.append(time_calls(model.run, x, repeats))
    edgeml_median, raw_median = statistics.median(edgeml_us), statistics.median(raw_us)
    overhead, ratio = paired_difference(raw_us, edgeml_us), paired_ratio(raw_us, edgeml_us)
    print(f"{label:<22} {fmt:<7} raw {raw_median:10.1f} µs   Model.run {edgeml_median:10.1f} µs   "
          f"overhead {overhead:+8.1f} µs  ratio {ratio:.3f}")
    return overhead, ratio


def paired_difference(base, other):
    """Median over rounds of other - base, each pair timed back to back."""
    return statistics.median(b - a for a, b in zip(base, other))


def paired_ratio(base, other):
    return statistics.median(b / a for a, b in zip(base, other))


def main():
    print("median µs per call, 1 thread, batch 1, interleaved rounds")
    results = {}
    for fmt in ("tflite", "onnx"):
        results[("tiny", fmt)] = compare("tiny MLP (2 KB)", TINY[fmt], fmt, repeats=2000, rounds=15)
    for fmt, path in mobilenet().items():
        results[("mobilenet", fmt)] = compare("MobileNetV2 224 (14 MB)", path, fmt, repeats=5, rounds=9)
    tiny_ok = all(results[("tiny", fmt)][0] <= 10.0 for fmt in ("tflite", "onnx"))
    big_ok = all(results[("mobilenet", fmt)][1] <= 1.05 for fmt in ("tflite", "onnx"))
    print(f"targets: tiny overhead <= 10 µs: {'met' if tiny_ok else 'MISSED'}; "
          f"MobileNet ratio <= 1.05: {'met' if big_ok else 'MISSED'}")


if __name__ == "__main__":
    main()
