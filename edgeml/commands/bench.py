"""`edgeml bench`: several models, backends and thread counts side by side, with a regression gate, and
with --html FILE a self-contained report (edgeml.report)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import click
from edgeml_runtime import EdgeMLError

from edgeml.artifacts import resolve_model_paths
from edgeml.console import ProgressDisplay, format_ms, format_size, stdout_console


def parse_int_list(_ctx, _param, value: Optional[str]) -> Optional[List[int]]:
    """--threads 1,2,4 as [1, 2, 4], by the rule `python -m edgeml_runtime select` applies on the device."""
    from edgeml_runtime.recommend import parse_thread_counts

    if value is None:
        return None
    try:
        return parse_thread_counts(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


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
@click.option("--html", "html_file", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML report (table, latency plots) to this file.")
@click.option("--per-op", "per_op", is_flag=True,
              help="Also time each operator (ONNX Runtime's profiler; .tflite models get a note: LiteRT has none).")
def bench(models, threads, runs, warmup, min_seconds, backends, input_file, baseline, max_regression, as_json,
          html_file, per_op):
    """Benchmark MODELS (files, manifest.json or conversion directories) side by side."""
    from edgeml_runtime import benchmark
    from edgeml_runtime.memory import reset_peak_rss
    from edgeml_runtime.progress import report
    from edgeml_runtime.regression import check_regressions, compare_to_baseline, load_baseline

    paths = [path for argument in models for path in resolve_model_paths(argument)]
    baseline_results = load_baseline(baseline) if baseline else None
    configurations = [
        (path, backend, thread_count)
        for path in paths
        for backend in backends_to_run(path, backends)
        for thread_count in (threads or [None])
    ]
    results = []
    cores = os.cpu_count() or 1
    with ProgressDisplay("benchmarking") as display:
        if threads and max(threads) > cores:
            report(display, "bench", f"--threads {max(threads)} is more than this machine's {cores} cores: those "
                                     "threads take turns on the cores, so their latency says little about a device "
                                     "with that many cores", level="warning")
        for index, (path, backend, thread_count) in enumerate(configurations):
            label = f"{path.name} {backend or 'default backend'} threads={thread_count or 'all'}"
            report(display, "bench", f"benchmarking {label}", done=index, total=len(configurations))
            result = benchmark(path, backend=backend, threads=thread_count, runs=runs, warmup=warmup,
                               min_seconds=min_seconds, inputs=input_file).to_dict()
            _describe_quantization(result, path)
            if per_op:
                add_per_op(result, inputs=input_file, warmup=warmup)
            results.append(result)
            report(display, "bench", f"{path.name} {result['backend']} threads={result['threads']}: "
                                     f"p50 {format_ms(result['latency_ms']['p50'])}")
    peak_resets = reset_peak_rss()
    mark_recommended(results, models)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        stdout_console().print(results_table(results))
        stdout_console().print(peak_memory_note(peak_resets), markup=False, highlight=False, style="dim")
        if per_op:
            print_per_op(results)
    if html_file:
        path = _write_html(html_file, results, models)
        if not as_json:
            stdout_console().print(f"report: {path}", markup=False, highlight=False, soft_wrap=True)
    if baseline_results is not None:
        rows = compare_to_baseline(results, baseline_results, max_regression)
        for row in rows:  # the gate's verdict is a log next to the results: stderr, so --json stays clean
            click.echo(f"{row.model} {row.backend} threads={row.threads}: p50 {format_ms(row.baseline_p50_ms)} -> "
                       f"{format_ms(row.p50_ms)} ({row.change:+.1%}) {'REGRESSION' if row.regressed else 'ok'}",
                       err=True)
        check_regressions(rows, max_regression)


def add_per_op(result: dict, **options) -> None:
    """`per_op` (and its summary, or a note for .tflite) on a result: edgeml_runtime.profiling."""
    from edgeml_runtime.profiling import add_per_op as profile

    profile(result, **options)


def print_per_op(results: List[dict]) -> None:
    """Each result's slowest operators and how their sum compares with its p50, as plain lines."""
    from edgeml_runtime.profiling import format_per_op

    for result in results:
        stdout_console().print(f"\n{Path(result['model']).name} ({result['backend']}, threads={result['threads']})",
                               markup=False, highlight=False)
        for line in format_per_op(result):
            stdout_console().print(line, markup=False, highlight=False, soft_wrap=True)


def peak_memory_note(resets: bool) -> str:
    """What the peak RSS column measures, and how far rows compare."""
    basis = ("peak RSS: this process's resident-memory high-water mark while the model loaded and ran, "
             "Python, numpy and the backend's libraries included (not the model's own footprint); ")
    if resets:
        return basis + "reset before each model, so rows compare with each other"
    return basis + ("this OS cannot reset it between models: a row includes every model before it; bench one "
                    "model per command to compare")


def _describe_quantization(result: dict, path: Path) -> None:
    """The model's quantization from its graph (a QDQ ONNX or a --float-io TFLite model is int8 with float
    I/O, which the runtime's `quantization`, taken from the inputs, calls float); `io_quantized`: whether
    it takes and gives integers."""
    from edgeml.inspection import model_quantization

    io_quantization = result.get("quantization")
    result["quantization"] = model_quantization(path, result.get("format")) or io_quantization
    result["io_quantized"] = io_quantization is not None


def quantization_label(result: dict) -> str:
    quantization = result.get("quantization")
    if not quantization:
        return "fp32"
    if result.get("io_quantized") is False and quantization not in ("fp16", "dynamic"):
        return f"{quantization} (float I/O)"
    return quantization


def _write_html(html_file, results: List[dict], arguments) -> Path:
    """The report, with each artifact's validation and the recommended one when it came from a manifest."""
    from edgeml.report import bench_report, write_report

    entries, scores = _manifest_entries(arguments)
    return write_report(html_file, bench_report(results, entries, scores=scores))


def _manifest_entries(arguments) -> Tuple[Dict[str, dict], Optional[bool]]:
    """Resolved model path -> its conversion-manifest entry (plus `recommended`), for the arguments that are
    manifests or conversion directories; and whether their outputs are class scores (None: unknown)."""
    from edgeml_runtime.documents import read_conversion_manifest

    from edgeml.report import outputs_are_scores

    entries, scores = {}, None
    for argument in arguments:
        path = Path(argument)
        if not (path.is_dir() or path.suffix == ".json"):
            continue
        manifest = read_conversion_manifest(path)
        recommended = manifest.data.get("recommended")
        recommended = recommended.get("path") if isinstance(recommended, dict) else recommended
        for artifact in manifest.artifacts:
            entries[str(artifact.file.resolve())] = {**artifact.entry, "recommended": artifact.path == recommended}
        if scores is None:
            scores = outputs_are_scores(manifest.directory, manifest.data)
    return entries, scores


def mark_recommended(results: List[dict], arguments) -> None:
    """`"recommended": true` on the rows of a manifest's measured recommendation (`edgeml select`), false on its
    other artifacts' rows; rows of manifests without one, and of model files, get no such key."""
    from edgeml_runtime.documents import read_conversion_manifest

    recommended, listed = set(), set()
    for argument in arguments:
        path = Path(argument)
        if not (path.is_dir() or path.suffix == ".json"):
            continue
        manifest = read_conversion_manifest(path)
        if manifest.recommended_path is not None:
            recommended.add(manifest.recommended_path.resolve())
            listed.update(artifact.file.resolve() for artifact in manifest.artifacts)
    for result in results:
        model = Path(result["model"]).resolve()
        if model in listed:
            result["recommended"] = model in recommended


def backends_to_run(path: Path, requested: Optional[str]) -> List[Optional[str]]:
    """The requested backends that can run this file; [None] (the default backend) when none is asked for."""
    from edgeml_runtime.formats import backends_for, format_of_path

    if not requested:
        return [None]
    names = [name.strip() for name in requested.split(",") if name.strip()]
    fmt = format_of_path(path)
    runs_it = backends_for(fmt) if fmt else ()
    usable = [name for name in names if name in runs_it]
    if not usable:
        raise EdgeMLError(f"none of the backends {names} runs {path.name}; use one of {', '.join(runs_it)}")
    return usable


def results_table(results: List[dict]):
    from rich.table import Table

    emulated = any(result["machine"].get("emulated") for result in results)
    title = "edgeml bench" + (" — EMULATED runs: not device latency" if emulated else "")
    table = Table(title=title, caption=f"{results[0]['machine']['arch']}, {results[0]['machine']['cpu']}, "
                                       f"{results[0]['machine']['cores']} cores" if results else None)
    for column in ("model", "format", "quant", "backend", "threads", "size", "init ms", "first ms",
                   "p50 ms", "p90 ms", "p99 ms", "inf/s", "peak RSS"):
        table.add_column(column, justify="left" if column in ("model", "format", "quant", "backend") else "right")
    fastest = min((result["latency_ms"]["p50"] for result in results), default=0)
    for result in results:
        latency = result["latency_ms"]
        p50 = f"{latency['p50']:.3f}"
        if latency["p50"] == fastest and len(results) > 1:
            p50 = f"[bold green]{p50}[/]"
        table.add_row(
            Path(result["model"]).name + (" ★ recommended" if result.get("recommended") else ""),
            result["format"], quantization_label(result),
            f"{result['backend']} {result['backend_version']}", str(result["threads"]),
            format_size(result["model_bytes"]), f"{result['init_ms']:.1f}", f"{result['first_ms']:.2f}",
            p50, f"{latency['p90']:.3f}", f"{latency['p99']:.3f}", f"{result['throughput_ips']:.0f}",
            format_size(result["peak_rss_mb"] * 1024 * 1024),
        )
    return table
