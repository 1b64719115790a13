"""Why Model gives each thread its own TFLite interpreter instead of sharing one behind a lock.

A TFLite interpreter is not thread-safe, so N threads serving one model have two safe designs:
- one interpreter, shared, every run behind a lock (the threads take turns); built here directly on LiteRT's
  Interpreter (set_tensor, invoke, get_tensor), the cheapest way to run it;
- an interpreter per thread, no lock: what `edgeml_runtime.Model` does (measured through Model.run), and the
  same built directly on LiteRT (threading.local), which isolates the design from Model's own cost.
Each round measures all three with N threads (total runs/s); ratios are medians of per-round ratios.
Run: python -m benchmarks.thread_safety
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import edgeml_runtime as er
import numpy as np

from benchmarks.common import interleaved, median_ratio, print_header
from tests.support.models import TINY, mobilenet


def _interpreter(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=path.read_bytes(), num_threads=1)
    interpreter.allocate_tensors()
    return interpreter, interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]


class SharedLocked:
    """One LiteRT interpreter for every thread, each run holding a lock."""

    def __init__(self, path: Path):
        self.interpreter, self.input, self.output = _interpreter(path)
        self.lock = threading.Lock()

    def run(self, x):
        with self.lock:
            self.interpreter.set_tensor(self.input, x)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self.output)


class PerThread:
    """A LiteRT interpreter per thread (created on the thread's first run), no lock."""

    def __init__(self, path: Path):
        self.path = path
        self.local = threading.local()

    def run(self, x):
        state = getattr(self.local, "state", None)
        if state is None:
            state = self.local.state = _interpreter(self.path)
        interpreter, index_in, index_out = state
        interpreter.set_tensor(index_in, x)
        interpreter.invoke()
        return interpreter.get_tensor(index_out)


def throughput(pool: ThreadPoolExecutor, run, x, threads: int, calls_per_thread: int) -> float:
    """Total runs/s of `threads` threads each making `calls_per_thread` calls at once."""
    start = threading.Barrier(threads + 1)

    def work(_):
        start.wait()
        for _ in range(calls_per_thread):
            run(x)

    futures = [pool.submit(work, i) for i in range(threads)]
    start.wait()
    started = time.perf_counter()
    for future in futures:
        future.result()
    return threads * calls_per_thread / (time.perf_counter() - started)


def compare(label: str, path: Path, threads: int, calls: int, rounds: int) -> float:
    designs = {"one shared interpreter + lock": SharedLocked(path), "interpreter per thread": PerThread(path),
               "Model (per thread)": er.load(path, threads=1)}
    shape = tuple(1 if dim is None else dim for dim in designs["Model (per thread)"].inputs[0].shape)
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    reference = designs["one shared interpreter + lock"].run(x)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for design in designs.values():  # warm: every pool thread makes its interpreters, same answers
            for result in pool.map(lambda _, design=design: design.run(x), range(threads * 4)):
                np.testing.assert_allclose(next(iter(result.values())) if isinstance(result, dict) else result,
                                           reference, rtol=1e-6, atol=1e-6)
        steps = {name: (lambda design=design: throughput(pool, design.run, x, threads, calls))
                 for name, design in designs.items()}
        measured = interleaved(steps, rounds)
    base = measured["one shared interpreter + lock"]
    print(f"{label}, {threads} threads:")
    for name, values in measured.items():
        ratio = "" if values is base else f"   {median_ratio(base, values):.2f}x the locked one"
        print(f"  {name:<32}{statistics.median(values):10.1f} runs/s{ratio}")
    return median_ratio(base, measured["interpreter per thread"])


def main():
    print_header("N threads running one TFLite model: a shared interpreter behind a lock vs one per thread "
                 "(1 intra-op thread each)")
    big = mobilenet()["tflite"]
    for threads in (2, 4):
        compare("tiny MLP", TINY["tflite"], threads, calls=2000, rounds=9)
        compare("MobileNetV2 224", big, threads, calls=8, rounds=7)


if __name__ == "__main__":
    main()
