"""Model.run vs the raw backend loop on the same model, interleaved in one run.

Target (issue 2): median overhead at most 5% on a MobileNet-sized model and at most 10 µs per call on a
tiny one. Models: the tiny fp32 MLP and MobileNetV2 (plain converters), and the tiny MLP made int8 by
`edgeml convert` run through the float API: floats in, floats out. For that one the raw loop does the same
work by hand (quantize the input with the model's scale and zero point, invoke, dequantize the output), so
the comparison is like for like. Prints median µs per call, and the overhead and ratio as medians of
per-round differences and ratios.

Quantized I/O (issue 17): the digits CNN of `make demo` (8x8x1 -> 10, .tflite fp32 and int8 with int8 I/O),
six loops interleaved: the raw interpreter fed fp32, the raw interpreter fed int8 it is given ready-made
(what the backend itself costs), the raw loop on the int8 model's float-I/O twin fed floats (what quantizing
and dequantizing inside the interpreter adds), Model.run on the fp32 model, Model.run on the int8 model
through the float API (floats in and out: the twin, from its 8th call on), and the same with the twin turned
off (quantized and dequantized with numpy, as before the twin). Targets: Model.run int8 within 3 µs of the
raw int8 loop, quantize+dequantize within 2 µs, and the int8/fp32 time ratio through edgeml within 15% of the
raw interpreter's ratio.
Run: python -m benchmarks.runtime_overhead [--tiny-only] [--quantized-io-only]
"""

from __future__ import annotations

import argparse
import statistics
import time

import edgeml_runtime as er
import numpy as np
from edgeml_runtime.fast_run import TWIN_AFTER_CALLS

from benchmarks.common import interleaved, median_difference, median_ratio, print_header, time_calls
from tests.support.models import TINY, digits_cnn, edgeml_int8, mobilenet


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


def raw_interpreter(session):
    """set_tensor(x), invoke, get_tensor on the LiteRT interpreter inside a Model's `session` (1 thread): the
    backend's own cost. The same interpreter instance Model.run calls, not a second one: two interpreters of one
    model can differ by several µs per call on a 25 µs model (where their buffers land in memory)."""
    interpreter = session._interpreter  # private on purpose: like for like, only Model.run's own work
    index_in, index_out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def call(feed):
        interpreter.set_tensor(index_in, feed)
        interpreter.invoke()
        return interpreter.get_tensor(index_out)

    return call


def compare_quantized_io(repeats=10000, rounds=15):
    """The digits CNN's loops (see the module docstring), interleaved. Each is timed twice per round: wall time,
    and this thread's CPU time, which leaves out the time the neighbours' processes took the core (on a shared
    2-core host that is most of the wall time). Returns {clock: (int8 overhead µs, in-graph conversion µs,
    ratio excess)}."""
    paths = digits_cnn()
    fp32_model, int8_model = er.load(paths["fp32"], threads=1), er.load(paths["int8"], threads=1)
    numpy_model = er.load(paths["int8"], threads=1)
    numpy_model._first_fast._calls_before_twin = 0  # never makes its twin: the numpy path, for comparison
    spec = int8_model.inputs[0]
    x = np.random.default_rng(0).random((1, 8, 8, 1), dtype=np.float32) * 16.0  # digits pixels are 0..16
    x_int8 = er.quantize(x, spec.quantization, spec.dtype)
    for _ in range(TWIN_AFTER_CALLS):
        int8_model.run(x)  # Model.run switches to the float-I/O twin on this call
    twin = int8_model._first_fast._float_run.__self__
    raw_fp32, raw_int8 = raw_interpreter(fp32_model._first_session), raw_interpreter(int8_model._first_session)
    expected = er.dequantize(raw_int8(x_int8), int8_model.outputs[0].quantization)
    for model in (int8_model, numpy_model):  # the same work, bit for bit
        np.testing.assert_array_equal(next(iter(model.run(x).values())), expected)
    loops = {"raw fp32": (raw_fp32, x), "raw int8": (raw_int8, x_int8), "raw twin": (raw_interpreter(twin), x),
             "edgeml fp32": (fp32_model.run, x), "edgeml int8": (int8_model.run, x),
             "numpy path": (numpy_model.run, x)}
    for call, feed in loops.values():
        _wall_and_cpu(call, feed, 200)  # warm-up
    measured = interleaved({name: (lambda call=call, feed=feed: _wall_and_cpu(call, feed, repeats))
                            for name, (call, feed) in loops.items()}, rounds)
    print("digits CNN (make demo, 8x8x1 -> 10), LiteRT, 1 thread, batch 1; Model.run int8 is fed floats")
    print("  raw twin: the raw loop on the float-I/O twin Model.run uses, fed floats; numpy path: Model.run on the "
          "int8 model with the twin turned off")
    results = {}
    for position, clock in enumerate(("wall", "cpu")):
        us = {name: [pair[position] for pair in values] for name, values in measured.items()}
        print(f"  {clock + ' time':<9} µs/call: " + "   ".join(f"{name} {statistics.median(values):6.2f}"
                                                          for name, values in us.items()))
        overhead_fp32 = median_difference(us["raw fp32"], us["edgeml fp32"])
        overhead_int8 = median_difference(us["raw int8"], us["edgeml int8"])
        overhead_numpy = median_difference(us["raw int8"], us["numpy path"])
        in_graph = median_difference(us["raw int8"], us["raw twin"])
        raw_ratio, edgeml_ratio = median_ratio(us["raw fp32"], us["raw int8"]), median_ratio(us["edgeml fp32"],
                                                                                             us["edgeml int8"])
        # The ratio of ratios, per round too: how much slower, relative to fp32, int8 gets through edgeml.
        excess = statistics.median((ei / ef) / (ri / rf) for rf, ri, ef, ei in
                                   zip(us["raw fp32"], us["raw int8"], us["edgeml fp32"], us["edgeml int8"]))
        print(f"  {'':<9} overhead of Model.run: fp32 {overhead_fp32:+.2f} µs, int8 {overhead_int8:+.2f} µs "
              f"(numpy path {overhead_numpy:+.2f} µs); quantize+dequantize in the twin {in_graph:+.2f} µs; "
              f"int8/fp32 ratio: raw {raw_ratio:.3f}, edgeml {edgeml_ratio:.3f} (x{excess:.3f} the raw ratio)")
        results[clock] = (overhead_int8, in_graph, excess)
    return results


def _wall_and_cpu(call, argument, repeats):
    """Mean wall and thread-CPU µs per call(argument), over `repeats` calls in a row."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(repeats):
        call(argument)
    return (time.perf_counter() - wall) / repeats * 1e6, (time.thread_time() - cpu) / repeats * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny-only", action="store_true", help="skip MobileNet (built with TensorFlow once)")
    parser.add_argument("--quantized-io-only", action="store_true", help="only the digits CNN's quantized I/O")
    args = parser.parse_args()
    print_header("Model.run vs the raw backend loop: median µs per call, 1 thread, batch 1")
    for clock, (overhead_int8, in_graph, excess) in compare_quantized_io().items():
        print(f"targets ({clock} time): int8 Model.run within 3 µs of the raw int8 loop: "
              f"{'met' if overhead_int8 <= 3.0 else 'MISSED'}; quantize+dequantize <= 2 µs: "
              f"{'met' if in_graph <= 2.0 else 'MISSED'}; int8/fp32 ratio within 15% of the raw one: "
              f"{'met' if excess <= 1.15 else 'MISSED'}")
    print()
    if args.quantized_io_only:
        return
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
