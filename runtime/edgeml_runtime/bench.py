"""Latency benchmarks in the style of TFLite's benchmark_model and onnxruntime_perf_test.

Init (read + load), first inference, warm-up (runs and/or seconds), then timed runs until both the run
count and the minimum time are reached (capped by max_seconds). Result schema: `edgeml.bench/1`.
Comparing results with an earlier run's (the regression gate) is `edgeml_runtime.regression`.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

import numpy as np

from edgeml_runtime._version import __version__
from edgeml_runtime.errors import InputError
from edgeml_runtime.feeds import prepare_feeds
from edgeml_runtime.formats import BENCH_SCHEMA
from edgeml_runtime.machine import machine_info
from edgeml_runtime.memory import peak_rss_mb, reset_peak_rss
from edgeml_runtime.model import Model, load
from edgeml_runtime.specs import TensorSpec

__all__ = ["BenchResult", "benchmark", "load_inputs_file", "synthetic_inputs"]


class BenchResult:
    """One benchmark's figures (schema `edgeml.bench/1`, see `to_dict`). A plain class, not a dataclass:
    `python -m edgeml_runtime bench` imports this module on every start (benchmarks/process_cost.py)."""

    FIELDS = ("model", "model_bytes", "format", "quantization", "backend", "backend_version", "threads", "init_ms",
              "first_ms", "warmup_runs", "runs", "latency_ms", "throughput_ips", "peak_rss_mb", "machine",
              "timestamp", "edgeml_runtime")

    def __init__(self, model: str, model_bytes: int, format: str, quantization: Optional[str],  # noqa: A002
                 backend: str, backend_version: str, threads: int, init_ms: float, first_ms: float,
                 warmup_runs: int, runs: int, latency_ms: Dict[str, float], throughput_ips: float,
                 peak_rss_mb: float, machine: Optional[Dict[str, Any]] = None, timestamp: str = "",
                 edgeml_runtime: str = __version__):
        self.model, self.model_bytes, self.format, self.quantization = model, model_bytes, format, quantization
        self.backend, self.backend_version, self.threads = backend, backend_version, threads
        self.init_ms, self.first_ms, self.warmup_runs, self.runs = init_ms, first_ms, warmup_runs, runs
        self.latency_ms, self.throughput_ips, self.peak_rss_mb = latency_ms, throughput_ips, peak_rss_mb
        self.machine = {} if machine is None else machine
        self.timestamp, self.edgeml_runtime = timestamp, edgeml_runtime

    def to_dict(self) -> dict:
        return {"schema": BENCH_SCHEMA, **{name: copy.deepcopy(getattr(self, name)) for name in self.FIELDS}}

    def __eq__(self, other) -> bool:
        return isinstance(other, BenchResult) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"BenchResult({', '.join(f'{name}={getattr(self, name)!r}' for name in self.FIELDS)})"


def benchmark(
    model: Union[Model, str, os.PathLike],
    *,
    runs: int = 50,
    warmup: int = 1,
    min_seconds: float = 1.0,
    warmup_seconds: float = 0.5,
    max_seconds: float = 150.0,
    threads: Optional[int] = None,
    backend: Optional[str] = None,
    inputs: Any = None,
    batch: int = 1,
    seed: int = 0,
    progress: Optional[Callable[[int, int], None]] = None,
) -> BenchResult:
    """Benchmark a model (a loaded Model or a path, which is then loaded and its init time measured).

    `inputs`: None for random data within each input's valid range, a .npy/.npz path, or feeds as
    accepted by Model.run. `progress(done, total)` is called after each timed run.
    """
    if not isinstance(model, Model):
        reset_peak_rss()  # so the peak covers this model only, not what the process did before
        model = load(model, backend=backend, threads=threads)
    feeds = _resolve_inputs(model, inputs, batch, seed)
    samples_per_run = _batch_size(feeds, model.inputs)  # also checks the feeds before any timing

    started = time.perf_counter()
    model.run(feeds)
    first_ms = (time.perf_counter() - started) * 1000.0

    warmup_runs = _warm_up(model, feeds, warmup, warmup_seconds, max_seconds)
    latencies = _timed_runs(model, feeds, runs, min_seconds, max_seconds, progress)
    return BenchResult(
        model=str(model.path),
        model_bytes=model.model_bytes,
        format=model.format,
        quantization=model.quantization,
        backend=model.backend,
        backend_version=model.backend_version,
        threads=int(model.threads or 0),
        init_ms=round(model.init_ms, 3),
        first_ms=round(first_ms, 3),
        warmup_runs=warmup_runs,
        runs=len(latencies),
        latency_ms=latency_stats(latencies),
        throughput_ips=round(samples_per_run * 1000.0 / float(np.mean(latencies)), 2),
        peak_rss_mb=round(peak_rss_mb(), 1),
        machine=machine_info(),
        timestamp=_utc_now(),
    )


def _utc_now() -> str:
    """Like datetime.now(timezone.utc).isoformat(timespec="seconds"), without importing datetime."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def latency_stats(latencies_ms: Sequence[float]) -> Dict[str, float]:
    values = np.sort(np.asarray(latencies_ms, dtype=np.float64))
    stats = {"mean": values.mean(), "std": values.std(), "min": values[0]}
    for percent in (50, 90, 95, 99):
        stats[f"p{percent}"] = percentile(values, percent)
    stats["max"] = values[-1]
    return {key: round(float(value), 4) for key, value in stats.items()}


def percentile(sorted_values: np.ndarray, percent: float) -> float:
    """numpy.percentile's default (linear) method on sorted data; np.percentile's first call costs
    ~30 ms of lazy imports, which shows in a one-run `python -m edgeml_runtime bench` on a small board."""
    position = (len(sorted_values) - 1) * percent / 100.0
    below = int(position)
    above = min(below + 1, len(sorted_values) - 1)
    return float(sorted_values[below] + (sorted_values[above] - sorted_values[below]) * (position - below))


def _warm_up(model: Model, feeds, runs: int, seconds: float, max_seconds: float) -> int:
    done, started = 0, time.perf_counter()
    while done < runs or time.perf_counter() - started < seconds:
        if time.perf_counter() - started > max_seconds:
            break
        model.run(feeds)
        done += 1
    return done


def _timed_runs(model: Model, feeds, runs: int, min_seconds: float, max_seconds: float, progress) -> list:
    latencies = []
    clock = time.perf_counter
    started = clock()
    while len(latencies) < runs or clock() - started < min_seconds:
        if latencies and clock() - started > max_seconds:
            break
        before = clock()
        model.run(feeds)
        latencies.append((clock() - before) * 1000.0)
        if progress is not None:
            progress(len(latencies), runs)
    return latencies


def _resolve_inputs(model: Model, inputs: Any, batch: int, seed: int):
    if inputs is None:
        return synthetic_inputs(model.inputs, batch=batch, seed=seed)
    if isinstance(inputs, (str, os.PathLike)):
        return load_inputs_file(inputs, model.inputs)
    return inputs


def synthetic_inputs(specs: Sequence[TensorSpec], *, batch: int = 1, seed: int = 0) -> Dict[str, np.ndarray]:
    """Random real-valued feeds within each input's valid range (dynamic dimensions set to `batch`).
    InputError, before anything is allocated, when they would need more than `array_bytes_limit()`."""
    from edgeml_runtime.arrayfiles import LIMIT_VARIABLE, array_bytes_limit, describe_bytes

    shapes = {spec.name: tuple(batch if dim is None else dim for dim in spec.shape) for spec in specs}
    limit, total = array_bytes_limit(), 0
    for spec in specs:
        count = 1
        for dim in shapes[spec.name]:
            count *= int(dim)
        total += count * spec.numpy_dtype.itemsize
        if total > limit:
            raise InputError(f"input '{spec.name}' of shape {spec.describe()} needs {describe_bytes(total)} for "
                             f"{batch} sample(s), beyond the limit of {describe_bytes(limit)} ({LIMIT_VARIABLE}); "
                             "this model cannot run within it")
    rng = np.random.default_rng(seed)
    return {spec.name: _random_values(rng, spec, shapes[spec.name]) for spec in specs}


def _random_values(rng: np.random.Generator, spec: TensorSpec, shape) -> np.ndarray:
    dtype = spec.numpy_dtype
    if spec.quantization is not None:
        # The real values the integer range can represent, so quantization neither clips nor saturates.
        info = np.iinfo(dtype)
        low = (info.min - spec.quantization.zero_point) * spec.quantization.scale
        high = (info.max - spec.quantization.zero_point) * spec.quantization.scale
        return rng.uniform(low, high, size=shape).astype(np.float32)
    if dtype.kind == "f":
        return rng.random(shape, dtype=np.float64).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.integers(0, 10, size=shape).astype(dtype)  # small ids: safe for embeddings and indices


def load_inputs_file(path: Union[str, os.PathLike], specs: Sequence[TensorSpec], *,
                     max_bytes: int = 0) -> Dict[str, np.ndarray]:
    """Feeds from a .npy (single-input models) or .npz (arrays by input name, or one array). The file is
    not trusted: headers are checked before arrays are allocated, at most `max_bytes` in all (default
    `edgeml_runtime.arrayfiles.array_bytes_limit()`), numbers only."""
    from edgeml_runtime.arrayfiles import read_array_file

    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file not found: {path}")
    names = [spec.name for spec in specs]
    arrays = read_array_file(path, max_bytes=max_bytes)
    if isinstance(arrays, np.ndarray):
        if len(names) != 1:
            raise InputError(f"{path}: one array given, but the model has inputs {names}; use a .npz by name")
        return {names[0]: arrays}
    if not arrays:
        raise InputError(f"{path}: the .npz holds no arrays; the model's inputs are {names}")
    if len(arrays) == 1 and len(names) == 1:
        return {names[0]: next(iter(arrays.values()))}
    missing = [name for name in names if name not in arrays]
    if missing:
        raise InputError(f"{path}: no array for input(s) {missing}; it holds {sorted(arrays)}")
    return {name: arrays[name] for name in names}


def _batch_size(feeds, specs: Sequence[TensorSpec]) -> int:
    """Samples per run, for throughput: the leading dimension of the first input when it is a batch."""
    first = prepare_feeds(feeds, specs)[specs[0].name]
    return int(first.shape[0]) if first.ndim >= 2 else 1
