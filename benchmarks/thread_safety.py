"""Why Model gives each thread its own TFLite interpreter instead of sharing one behind a lock.

TFLite interpreters are not thread-safe. Both safe designs are measured side by side, interleaved:
N threads each running the same model, total throughput (runs/s) and the median of rounds.
Run: python -m benchmarks.thread_safety
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import edgeml_runtime as er
import numpy as np

from tests.support.models import TINY, mobilenet


class LockedModel:
    """The alternative design: one interpreter, one lock around every run."""

    def __init__(self, path):
        self.model = er.load(path, threads=1)
        self.lock = threading.Lock()

    def run(self, x):
        with self.lock:
            return self.model.run(x)


def throughput(run, x, threads, calls_per_thread):
    def work(_):
        for _ in range(calls_per_thread):
            run(x)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(threads)))  # warm: per-thread interpreters get created here
        started = time.perf_counter()
        list(pool.map(work, range(threads)))
        return threads * calls_per_thread / (time.perf_counter() - started)


def compare(label, path, threads, calls, rounds):
    per_thread = er.load(path, threads=1)
    locked = LockedModel(path)
    shape = tuple(1 if dim is None else dim for dim in per_thread.inputs[0].shape)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    per_thread_ips, locked_ips = [], []
    for _ in range(rounds):
        locked_ips.append(throughput(locked.run, x, threads, calls))
        per_thread_ips.append(throughput(per_thread.run, x, threads, calls))
    a, b = statistics.median(per_thread_ips), statistics.median(locked_ips)
    print(f"{label:<24} {threads} threads   per-thread interpreters {a:10.1f} runs/s   "
          f"one locked interpreter {b:10.1f} runs/s   ratio {a / b:.2f}x")


def main():
    print("TFLite, 1 intra-op thread per interpreter, median of interleaved rounds")
    for threads in (2, 4):
        compare("tiny MLP", TINY["tflite"], threads, calls=2000, rounds=7)
        compare("MobileNetV2 224", mobilenet()["tflite"], threads, calls=10, rounds=5)


if __name__ == "__main__":
    main()
