"""What every benchmark here shares: a header saying what machine measured it, and interleaved rounds.

    print_header("Model.run vs the raw backend loop")      # title, CPU model and flags, cores, versions
    rounds = interleaved({"raw": raw_step, "edgeml": edgeml_step}, rounds=15)
    rounds["edgeml"], rounds["raw"]                          # one measurement per round for each step
    median_ratio(rounds["raw"], rounds["edgeml"])            # the median over rounds of edgeml / raw
    median_difference(rounds["raw"], rounds["edgeml"])       # the median over rounds of edgeml - raw

The hosts here differ (some have AVX-512 VNNI, where int8 kernels are much faster, some only AVX2) and are
shared (their speed swings up to 2x with the neighbours' load). So every figure comes with the CPU flags that
matter, and comparisons are made within a round: each round runs every step back to back, in a rotating
order, and ratios or differences are taken per round before the median, so a slow patch of the machine hits
both sides of a pair alike instead of whichever happened to run then.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Mapping, Sequence

__all__ = ["cpu_facts", "interleaved", "median_difference", "median_ratio", "print_header", "time_calls"]

# The CPU features that change which kernels LiteRT (XNNPACK) and ONNX Runtime (MLAS) pick.
FLAGS_OF_INTEREST = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                     "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "asimd", "asimddp", "i8mm", "sve")


def cpu_facts() -> Dict[str, object]:
    """CPU model, logical cores and which FLAGS_OF_INTEREST the CPU has (from /proc/cpuinfo on Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model", "hardware") and model in ("", platform.machine(), "x86_64"):
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "cores": os.cpu_count(), "flags": [flag for flag in FLAGS_OF_INTEREST if flag in flags]}


def _versions() -> str:
    from importlib import metadata

    found = []
    for name in ("numpy", "ai-edge-litert", "onnxruntime", "tensorflow"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(found)


def print_header(title: str) -> None:
    """The benchmark's title and the machine: CPU, its flags, cores, Python and the backends' versions."""
    facts = cpu_facts()
    print(title)
    print(f"machine: {facts['model']}, {facts['cores']} logical cores, {platform.machine()}; "
          f"CPU flags: {' '.join(facts['flags']) or 'none of ' + ' '.join(FLAGS_OF_INTEREST[:6])}")
    print(f"Python {sys.version.split()[0]}; {_versions()}")
    print("each round runs every step back to back (rotating order); ratios and differences are medians of "
          "per-round ones\n")


def interleaved(steps: Mapping[str, Callable[[], float]], rounds: int) -> Dict[str, List[float]]:
    """Run every step once per round, the order rotating from round to round; each step returns its
    measurement (seconds, µs, runs/s: whatever it measures). Returns the measurements by step name."""
    names = list(steps)
    results: Dict[str, List[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(steps[name]())
    return results


def median_ratio(base: Sequence[float], other: Sequence[float]) -> float:
    """Median over rounds of other / base (the two measured in the same round)."""
    return statistics.median(b / a for a, b in zip(base, other))


def median_difference(base: Sequence[float], other: Sequence[float]) -> float:
    """Median over rounds of other - base (the two measured in the same round)."""
    return statistics.median(b - a for a, b in zip(base, other))


def time_calls(call: Callable, argument, repeats: int) -> float:
    """Mean µs per `call(argument)` over `repeats` calls in a row."""
    started = time.perf_counter()
    for _ in range(repeats):
        call(argument)
    return (time.perf_counter() - started) / repeats * 1e6
