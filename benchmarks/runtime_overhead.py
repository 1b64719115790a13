"""Model.run vs the raw backend loop on the same model, interleaved in one run.

Target (issue 2): median overhead at most 5% on a MobileNet-sized model and at most 10 µs per call on a
tiny one. Models: the tiny fp32 MLP and MobileNetV2 (plain converters), and the tiny MLP made int8 by
`edgeml convert` run through the float API: floats in, floats out. For that one the raw loop does the same
work by hand (quantize the input with the model's scale and zero point, invoke, dequantize the output), so
the comparison is like for like. Prints median µs per call, and the overhead and ratio as medians of
per-round differences and ratios. Run: python -m benchmarks.runtime_overhead [--tiny-only]
"""

from __future__ import annotations

import argparse
import statistics

import edgeml_runtime as er
import numpy as np

from benchmarks.common import interleaved, median_difference, median_ratio, print_header, time_calls
from tests.support.models import TINY, edgeml_int8, mobilenet


def raw_litert_loop(path):
    """set_tensor, invoke, get_tensor on one LiteRT interpreter; for int8 I/O, quantize and dequantize
    with numpy as an app would by hand."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=path.read_bytes(), num_threads=1)
    interpreter.allocate_tensors()
    (input_details,), (output_details,) = interpreter.get_input_details(), interpreter.get_output_details()
    index_in, index_out = input_details["index"], output_details["index"]
    in_scale, in_zero = input_details["quantization"]
    out_scale, out_zero = output_details["quantization"]
    if in_scale:
        integer = input_details["dtype"]
        low, high = np.iinfo(integer).min, np.iinfo(integer).max
        reciprocal = np.float32(1.0) / np.float32(in_scale)

        def call(x):
            interpreter.set_tensor(index_in, np.clip(np.round(x * reciprocal) + in_zero, low, high).astype(integer))
            interpreter.invoke()
            return (interpreter.get_tensor(index_out).astype(np.float32) - out_zero) * np.float32(out_scale)
    else:
        def call(x):
            interpreter.set_tensor(index_in, x)
            interpreter.invoke()
            return interpreter.get_tensor(index_out)

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


def compare(label, path, fmt, repeats, rounds):
    model = er.load(path, threads=1)
    raw = raw_litert_loop(path) if fmt == "tflite" else raw_onnx_loop(path)
    shape = tuple(1 if dim is None else dim for dim in model.inputs[0].shape)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    np.testing.assert_allclose(next(iter(model.run(x).values())), raw(x), rtol=1e-6, atol=1e-6)
    measured = interleaved({"raw": lambda: time_calls(raw, x, repeats),
                            "edgeml": lambda: time_calls(model.run, x, repeats)}, rounds)
    raw_us, edgeml_us = measured["raw"], measured["edgeml"]
    overhead, ratio = median_difference(raw_us, edgeml_us), median_ratio(raw_us, edgeml_us)
    print(f"{label:<30} {fmt:<7} raw {statistics.median(raw_us):10.1f} µs   Model.run "
          f"{statistics.median(edgeml_us):10.1f} µs   overhead {overhead:+8.1f} µs  ratio {ratio:.3f}")
    return overhead, ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny-only", action="store_true", help="skip MobileNet (built with TensorFlow once)")
    args = parser.parse_args()
    print_header("Model.run vs the raw backend loop: median µs per call, 1 thread, batch 1")
    results = {}
    int8 = edgeml_int8()
    for fmt in ("tflite", "onnx"):
        results[("tiny", fmt)] = compare("tiny MLP fp32 (2 KB)", TINY[fmt], fmt, repeats=2000, rounds=15)
        results[("int8", fmt)] = compare("tiny MLP int8, float API", int8[fmt], fmt, repeats=2000, rounds=15)
    if not args.tiny_only:
        for fmt, path in mobilenet().items():
            results[("mobilenet", fmt)] = compare("MobileNetV2 224 fp32 (14 MB)", path, fmt, repeats=5, rounds=9)
    tiny_ok = all(results[(kind, fmt)][0] <= 10.0 for kind in ("tiny", "int8") for fmt in ("tflite", "onnx"))
    verdict = f"targets: tiny overhead <= 10 µs: {'met' if tiny_ok else 'MISSED'}"
    if not args.tiny_only:
        big_ok = all(results[("mobilenet", fmt)][1] <= 1.05 for fmt in ("tflite", "onnx"))
        verdict += f"; MobileNet ratio <= 1.05: {'met' if big_ok else 'MISSED'}"
    print(verdict)


if __name__ == "__main__":
    main()
