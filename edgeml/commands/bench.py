"""`edgeml bench`: several models, backends and thread counts side by side, with a regression gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import click
from edgeml_runtime import CheckFailed, EdgeMLError

from edgeml.artifacts import resolve_model_paths
from edgeml.console import stderr_console, stdout_console

BACKENDS_BY_SUFFIX = {".tflite": ("litert", "tflite_runtime"), ".onnx": ("onnxruntime",), ".ort": ("onnxruntime",)}


def parse_int_list(_ctx, _param, value: Optional[str]) -> Optional[List[int]]:
    if value is None:
        return None
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, e.g. 1,2,4 (got '{value}')") from None
    if not numbers or min(numbers) < 1:
        raise click.BadParameter("thread counts must be 1 or more")
    return numbers


def parse_percent(_ctx, _param, value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        return float(value.rstrip("%")) / 100.0
    except ValueError:
        raise click.BadParameter(f"expected a percentage such as 10% (got '{value}')") from None


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--threads", callback=parse_int_list, help="Thread counts to compare, e.g. 1,2,4 (default: all cores).")
@click.option("--runs", default=50, show_default=True, help="Minimum timed runs.")
@click.option("--warmup", default=1, show_default=True, help="Minimum warm-up runs.")
@click.option("--min-seconds", default=1.0, show_default=True, help="Minimum timed seconds per configuration.")
@click.option("--backend", "backends", help="Backends to compare, comma-separated (litert,tflite_runtime,onnxruntime).")
@click.option("--input", "input_file", type=click.Path(dir_okay=False), help=".npy/.npz inputs instead of random data.")
@click.option("--baseline", type=click.Path(dir_okay=False), help="Earlier `edgeml bench --json` output.")
@click.option("--max-regression", callback=parse_percent, default="10%", show_default=True,
              help="With --baseline: fail (exit 1) when a p50 is slower by more than this.")
@click.option("--json", "as_json", is_flag=True, help="Print the list of edgeml.bench/1 results on stdout.")
def bench(models, threads, runs, warmup, min_seconds, backends, input_file, baseline, max_regression, as_json):
    """Benchmark MODELS (files, manifest.json or conversion directories) side by side."""
    from edgeml_runtime import benchmark

    paths = [path for argument in models for path in resolve_model_paths(argument)]
    baseline_results = load_baseline(baseline) if baseline else None
    configurations = [
        (path, backend, thread_count)
        for path in paths
        for backend in backends_for(path, backends)
        for thread_count in (threads or [None])
    ]
    results = []
    with stderr_console().status("benchmarking") as status:
        for index, (path, backend, thread_count) in enumerate(configurations, 1):
            label = f"{path.name} {backend or ''} threads={thread_count or 'all'}"
            status.update(f"[{index}/{len(configurations)}] {label}")
            result = benchmark(path, backend=backend, threads=thread_count, runs=runs, warmup=warmup,
                               min_seconds=min_seconds, inputs=input_file)
            results.append(result.to_dict())
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        stdout_console().print(results_table(results))
    if baseline_results is not None:
        check_regressions(results, baseline_results, max_regression)


def backends_for(path: Path, requested: Optional[str]) -> List[Optional[str]]:
    """The requested backends that can run this file; [None] (the default backend) when none is asked for."""
    if not requested:
        return [None]
    names = [name.strip() for name in requested.split(",") if name.strip()]
    usable = [name for name in names if name in BACKENDS_BY_SUFFIX.get(path.suffix, ())]
    if not usable:
        raise EdgeMLError(f"none of the backends {names} runs {path.name}; "
                          f"use one of {', '.join(BACKENDS_BY_SUFFIX.get(path.suffix, ()))}")
    return usable


def results_table(results: List[dict]):
    from rich.table import Table

    emulated = any(result["machine"].get("emulated") for result in results)
    title = "edgeml bench" + (" — EMULATED runs: not device latency" if emulated else "")
    table = Table(title=title, caption=f"{results[0]['machine']['arch']}, {results[0]['machine']['cpu']}, "
                                       f"{results[0]['machine']['cores']} cores" if results else None)
    for column in ("model", "format", "quant", "backend", "threads", "size", "init ms", "first ms",
                   "p50 ms", "p90 ms", "p99 ms", "inf/s", "peak MB"):
        table.add_column(column, justify="left" if column in ("model", "format", "quant", "backend") else "right")
    fastest = min((result["latency_ms"]["p50"] for result in results), default=0)
    for result in results:
        latency = result["latency_ms"]
        p50 = f"{latency['p50']:.3f}"
        if latency["p50"] == fastest and len(results) > 1:
            p50 = f"[bold green]{p50}[/]"
        table.add_row(
            Path(result["model"]).name, result["format"], result["quantization"] or "float",
            f"{result['backend']} {result['backend_version']}", str(result["threads"]),
            human_bytes(result["model_bytes"]), f"{result['init_ms']:.1f}", f"{result['first_ms']:.2f}",
            p50, f"{latency['p90']:.3f}", f"{latency['p99']:.3f}", f"{result['throughput_ips']:.0f}",
            f"{result['peak_rss_mb']:.0f}",
        )
    return table


def human_bytes(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024.0
    return f"{size} B"


def load_baseline(path: str) -> List[dict]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EdgeMLError(f"baseline file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise EdgeMLError(f"baseline {path} is not JSON ({error}); create it with edgeml bench --json") from None
    results = data if isinstance(data, list) else [data]
    if not all(isinstance(r, dict) and r.get("schema") == "edgeml.bench/1" for r in results):
        raise EdgeMLError(f"baseline {path} is not edgeml.bench/1 output; create it with edgeml bench --json")
    return results


def comparison_key(result: dict) -> tuple:
    return Path(result["model"]).name, result["format"], result["backend"], result["threads"]


def check_regressions(results: List[dict], baseline: List[dict], max_regression: float) -> None:
    """Exit 1 (CheckFailed) when any p50 is slower than the baseline by more than max_regression."""
    old = {comparison_key(result): result for result in baseline}
    matched, failures = 0, []
    for result in results:
        before = old.get(comparison_key(result))
        if before is None:
            continue
        matched += 1
        change = result["latency_ms"]["p50"] / before["latency_ms"]["p50"] - 1.0
        verdict = "REGRESSION" if change > max_regression else "ok"
        stderr_console().print(f"{Path(result['model']).name} {result['backend']} threads={result['threads']}: "
                               f"p50 {before['latency_ms']['p50']:.3f} -> {result['latency_ms']['p50']:.3f} ms "
                               f"({change:+.1%}) {verdict}")
        if change > max_regression:
            failures.append(f"{Path(result['model']).name} ({change:+.1%})")
    if matched == 0:
        raise EdgeMLError("no result matches the baseline (same model name, format, backend and threads)")
    if failures:
        raise CheckFailed(f"p50 slower than the baseline by more than {max_regression:.0%}: {', '.join(failures)}")
