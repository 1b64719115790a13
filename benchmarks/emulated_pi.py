"""The emulated Raspberry Pi 4 (qemu-user) against this machine: warm build, process start-up, and the
runtime's p50 latency on the tiny test models, side by side with the slowdown ratio.

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

from edgeml.emulation import build
from tests.support.models import MLP_FP32, MLP_INT8, MLP_ONNX

MODELS = [MLP_FP32, MLP_INT8, MLP_ONNX]
BENCH = ["-m", "edgeml_runtime", "bench", "--json", "--runs", "200", "--threads", "1"]
REPEATS = 3


def median_seconds(action) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def p50_ms(command, **kwargs) -> float:
    done = subprocess.run(command, capture_output=True, text=True, check=True, **kwargs)
    return json.loads(done.stdout)["latency_ms"]["p50"]


def main() -> None:
    device = build("rpi4", log=lambda message: print(message, file=sys.stderr))
    host_python = [sys.executable]
    pi_python = device.command(["python3"])
    pi_env = device.env()

    print(f"emulated rpi4: {device.emulated}, cpu {device.target.qemu_cpu}; host Python {sys.version.split()[0]}")
    print(f"warm build (cache hit), median of {REPEATS}: {median_seconds(lambda: build('rpi4')):.3f} s")
    for label, code in (("python -c pass", "pass"), ("import numpy + edgeml_runtime", "import numpy, edgeml_runtime")):
        host = median_seconds(lambda code=code: subprocess.run([*host_python, "-c", code], check=True))
        pi = median_seconds(lambda code=code: subprocess.run([*pi_python, "-c", code], check=True, env=pi_env))
        print(f"{label:32} host {host:7.3f} s   emulated {pi:7.3f} s   ratio {pi / host:6.1f}x")

    print(f"\n{'model':20} {'host p50 ms':>12} {'emulated p50 ms':>16} {'ratio':>8}")
    for model in MODELS:
        host = p50_ms([*host_python, *BENCH[:3], str(model), *BENCH[3:]])
        pi = p50_ms([*pi_python, *BENCH[:3], str(model), *BENCH[3:]], env=pi_env)
        print(f"{model.name:20} {host:12.4f} {pi:16.4f} {pi / host:7.1f}x")


if __name__ == "__main__":
    main()
