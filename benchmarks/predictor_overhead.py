"""Predictor.predict vs Model.run vs the raw backend loop on the same model, interleaved in one run.

Predictor adds the batch dimension, picks the output and builds label/score/top-3 on top of Model.run.
Models: the tiny fp32 MLP, the tiny MLP made int8 by `edgeml convert` (floats in and out), MobileNetV2.
Targets: Predictor.predict within 5% of the raw loop on a MobileNet-sized model (the runtime issue's
overhead target), and at most 10 µs per call on top of Model.run on a tiny one. Prints median µs per
call; differences and ratios are medians of per-round ones (the three loops of a round run back to
back, so a slow patch of the shared machine hits them alike).
Run: python -m benchmarks.predictor_overhead [--tiny-only]
"""

from __future__ import annotations

import argparse
import statistics

import edgeml_runtime as er
import numpy as np

from benchmarks.common import interleaved, median_difference, median_ratio, print_header, time_calls
from benchmarks.runtime_overhead import raw_litert_loop, raw_onnx_loop
from tests.support.models import TINY, edgeml_int8, mobilenet


def compare(label, path, fmt, repeats, rounds):
    predictor = er.Predictor.from_model(path, threads=1)
    model = predictor.model
    raw = raw_litert_loop(path) if fmt == "tflite" else raw_onnx_loop(path)
    shape = tuple(1 if dim is None else dim for dim in model.inputs[0].shape)
    batch = np.random.default_rng(0).random(shape, dtype=np.float32)
    sample = batch[0]
    np.testing.assert_allclose(predictor.predict(sample).output, raw(batch)[0], rtol=1e-6, atol=1e-6)
    calls = {"raw": lambda _: raw(batch), "run": lambda _: model.run(batch), "predict": predictor.predict}
    timings = interleaved({name: (lambda call=call: time_calls(call, sample, repeats)) for name, call in calls.items()},
                          rounds)
    raw_us, run_us, predict_us = (statistics.median(timings[name]) for name in ("raw", "run", "predict"))
    added_us = median_difference(timings["run"], timings["predict"])
    over_run, over_raw = (median_ratio(timings[name], timings["predict"]) for name in ("run", "raw"))
    print(f"{label:<26} {fmt:<7} raw {raw_us:9.1f} µs  Model.run {run_us:9.1f} µs  Predictor {predict_us:9.1f} µs  "
          f"predict/run {over_run:.3f}  predict/raw {over_raw:.3f}  predict - run {added_us:+.1f} µs")
    return added_us, over_raw


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny-only", action="store_true", help="skip MobileNet (built with TensorFlow once)")
    args = parser.parse_args()
    print_header("Predictor.predict vs Model.run vs the raw backend loop: median µs per call, 1 thread, one sample")
    results = {}
    int8 = edgeml_int8()
    for fmt in ("tflite", "onnx"):
        results[("tiny", fmt)] = compare("tiny MLP fp32 (2 KB)", TINY[fmt], fmt, repeats=500, rounds=41)
        results[("int8", fmt)] = compare("tiny MLP int8, float API", int8[fmt], fmt, repeats=500, rounds=41)
    if not args.tiny_only:
        for fmt, path in mobilenet().items():
            results[("mobilenet", fmt)] = compare("MobileNetV2 224 (14 MB)", path, fmt, repeats=20, rounds=11)
    tiny_ok = all(results[(kind, fmt)][0] <= 10.0 for kind in ("tiny", "int8") for fmt in ("tflite", "onnx"))
    verdict = f"targets: tiny predict - run <= 10 µs: {'met' if tiny_ok else 'MISSED'}"
    if not args.tiny_only:
        big_ok = all(results[("mobilenet", fmt)][1] <= 1.05 for fmt in ("tflite", "onnx"))
        verdict += f"; MobileNet predict/raw <= 1.05: {'met' if big_ok else 'MISSED'}"
    print(verdict)


if __name__ == "__main__":
    main()
