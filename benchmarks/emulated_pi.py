"""The emulated Raspberry Pi 4 (qemu-user) against this machine: warm build, process start-up, and the
runtime's p50 latency on the tiny test models, side by side with the slowdown ratio (host and emulated in
interleaved rounds, the ratio the median of per-round ratios).

Emulated latency is not the Pi's latency (qemu translates every aarch64 instruction): these figures say
what the emulation costs the test suite, not how fast a Pi is.

Run: .venv/bin/python -m benchmarks.emulated_pi   (builds the emulated Pi first if it is not cached)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

from benchmarks.common import interleaved, median_ratio, print_header
from edgeml.emulation import build
from tests.support.models import MLP_FP32, MLP_INT8, MLP_ONNX

MODELS = [MLP_FP32, MLP_INT8, MLP_ONNX]
BENCH = ["-m", "edgeml_runtime", "bench", "--json", "--runs", "200", "--threads", "1"]
REPEATS = 3


def seconds(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def p50_ms(command, **kwargs) -> float:
    done = subprocess.run(command, capture_output=True, text=True, check=True, **kwargs)
    return json.loads(done.stdout)["latency_ms"]["p50"]


def main() -> None:
    device = build("rpi4", log=lambda message: print(message, file=sys.stderr))
    host_python = [sys.executable]
    pi_python = device.command(["python3"])
    pi_env = device.env()

    print_header(f"The emulated rpi4 ({device.emulated}, cpu {device.target.qemu_cpu}) vs this machine")
    warm = statistics.median(seconds(lambda: build("rpi4")) for _ in range(REPEATS))
    print(f"warm build (cache hit), median of {REPEATS}: {warm:.3f} s")
    for label, code in (("python -c pass", "pass"), ("import numpy + edgeml_runtime", "import numpy, edgeml_runtime")):
        measured = interleaved({
            "host": lambda code=code: seconds(lambda: subprocess.run([*host_python, "-c", code], check=True)),
            "pi": lambda code=code: seconds(lambda: subprocess.run([*pi_python, "-c", code], check=True, env=pi_env)),
        }, REPEATS)
        ratio = median_ratio(measured["host"], measured["pi"])
        print(f"{label:32} host {statistics.median(measured['host']):7.3f} s   emulated "
              f"{statistics.median(measured['pi']):7.3f} s   ratio {ratio:6.1f}x")

    print(f"\n{'model':20} {'host p50 ms':>12} {'emulated p50 ms':>16} {'ratio':>8}")
    for model in MODELS:
        measured = interleaved({
            "host": lambda model=model: p50_ms([*host_python, *BENCH[:3], str(model), *BENCH[3:]]),
            "pi": lambda model=model: p50_ms([*pi_python, *BENCH[:3], str(model), *BENCH[3:]], env=pi_env),
        }, REPEATS)
        print(f"{model.name:20} {statistics.median(measured['host']):12.4f} {statistics.median(measured['pi']):16.4f} "
              f"{median_ratio(measured['host'], measured['pi']):7.1f}x")


if __name__ == "__main__":
    main()
