"""Per-operator time (`bench --per-op`), from ONNX Runtime's own profiler.

ONNX Runtime records, when a session is made with `SessionOptions.enable_profiling`, a JSON trace
(Chrome trace format) written by `end_profiling()`: one event per node per run (`cat` "Node", `name`
"<node>_kernel_time", `dur` in µs, `args.op_name` the operator type) and one per run ("model_run", the
whole run inside the session). Here a separate, profiled session of the same model runs the benchmark's
inputs (the profiler slows every run a little, so the latency figures come from the ordinary session),
warm-up runs are left out by their place in the trace, and each node's time is added up over the runs.

What the figures mean beside the benchmark's p50 (`per_op_summary`):
- per node: `total_us` over the profiled runs, `mean_us` and `median_us` per run, and `share`: its part of
  all operators' time applied to sum_ms, over p50 (so that the shares add up to sum_vs_p50);
- `sum_ms`: the operators' times of one run added up (median over the profiled runs);
- `session_run_ms`: ONNX Runtime's own time for a whole run (median), operators plus its executor's work
  between them;
- `sum_vs_p50`: sum_ms / p50. For a model whose operators do real work (a convolutional network) it is
  close to 1 (tests/runtime/test_per_op.py holds it within 15%). For a tiny model the fixed cost of a run
  (the Python call, the executor's setup, the copies of inputs and outputs: tens of µs) is most of p50 and
  the operators a fraction of it, which is the finding itself: operators are not where its time goes.

LiteRT's Python API has no per-operator profiler (TFLite's C++ benchmark_model has one), so .tflite models
get `per_op: null` with a note saying so, instead of figures made up from elsewhere.
"""

from __future__ import annotations

import bisect
import json
import os
import statistics
from typing import Any, Dict, List, Optional, Sequence

__all__ = ["CONSISTENT_WITHIN", "MAX_PROFILED_RUNS", "TFLITE_NOTE", "add_per_op", "format_per_op", "per_op_profile"]

TFLITE_NOTE = ("per-operator times: not available for .tflite models: LiteRT's Python API offers no per-operator "
               "profiler (bench the model's .onnx conversion for them)")
MAX_PROFILED_RUNS = 200  # enough for stable medians; the trace holds one event per node per run
CONSISTENT_WITHIN = 0.15  # a sum of operator times this close to p50 accounts for it
_KERNEL_SUFFIX = "_kernel_time"


def add_per_op(result: Dict[str, Any], *, inputs: Any = None, batch: int = 1, seed: int = 0, warmup: int = 1,
               backend: Optional[str] = None) -> Dict[str, Any]:
    """Add `per_op` (and `per_op_summary`, or `per_op_note` when there are none) to a bench result dict
    (`BenchResult.to_dict()`), profiling the same model, threads and inputs. Returns `result`."""
    if result["format"] != "onnx":
        result["per_op"] = None
        result["per_op_note"] = TFLITE_NOTE
        return result
    runs = max(10, min(int(result["runs"]), MAX_PROFILED_RUNS))
    profile = per_op_profile(result["model"], threads=result["threads"] or None, runs=runs, warmup=max(1, warmup),
                             inputs=inputs, batch=batch, seed=seed)
    p50_ms = float(result["latency_ms"]["p50"])
    # A node's share of the run: its part of all operators' time, of the median run's operator time, over p50.
    # The shares add up to sum_vs_p50; a node's own median would not (the machine's neighbours slow down
    # different nodes in different runs, so medians per node add up to less than a median run).
    total_us = sum(row["total_us"] for row in profile["operators"]) or 1.0
    run_share = profile["sum_ms"] / p50_ms if p50_ms else None
    result["per_op"] = [{**row, "share": round(row["total_us"] / total_us * run_share, 4) if run_share else None}
                        for row in profile["operators"]]
    result["per_op_summary"] = {
        "profiler": f"onnxruntime {result.get('backend_version', '')}".strip(),
        "runs": profile["runs"],
        "sum_ms": profile["sum_ms"],
        "session_run_ms": profile["session_run_ms"],
        "p50_ms": p50_ms,
        "sum_vs_p50": round(profile["sum_ms"] / p50_ms, 4) if p50_ms else None,
    }
    return result


def per_op_profile(model_path, *, threads: Optional[int] = None, runs: int = 50, warmup: int = 1,
                   inputs: Any = None, batch: int = 1, seed: int = 0) -> Dict[str, Any]:
    """Run an .onnx/.ort model `warmup` + `runs` times in a profiled ONNX Runtime session and return
    {"operators": [{"node", "op_type", "total_us", "mean_us", "median_us"}] (slowest first), "runs",
    "sum_ms" (median per run), "session_run_ms" (median)}. `inputs` as for `benchmark` (None: random)."""
    import shutil
    import tempfile
    from pathlib import Path

    from edgeml_runtime.backends.onnxrt import OnnxRuntimeSession
    from edgeml_runtime.bench import load_inputs_file, synthetic_inputs
    from edgeml_runtime.feeds import prepare_feeds
    from edgeml_runtime.model import read_model_file

    path = Path(model_path)
    folder = tempfile.mkdtemp(prefix="edgeml-profile-")
    try:
        session = OnnxRuntimeSession(read_model_file(path), threads, model_path=path,
                                     profile_prefix=os.path.join(folder, "profile"))
        if inputs is None:
            feeds = synthetic_inputs(session.inputs, batch=batch, seed=seed)
        elif isinstance(inputs, (str, os.PathLike)):
            feeds = load_inputs_file(inputs, session.inputs)
        else:
            feeds = inputs
        prepared = prepare_feeds(feeds, session.inputs)
        for _ in range(warmup + runs):
            session.run(prepared)
        with open(session.end_profiling(), encoding="utf-8") as handle:
            events = json.load(handle)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return summarize_trace(events, skip_runs=warmup)


def summarize_trace(events: Sequence[dict], *, skip_runs: int = 0) -> Dict[str, Any]:
    """Per-node figures from an ONNX Runtime profile's events, leaving out the first `skip_runs` runs: total
    µs over the runs, mean and median µs per run; and the median over runs of their operators' time added up
    (a run slowed down by the machine's neighbours moves a mean, not a median)."""
    runs = sorted((event for event in events if event.get("cat") == "Session" and event.get("name") == "model_run"),
                  key=lambda event: event["ts"])[skip_runs:]
    starts = [run["ts"] for run in runs]
    count = len(runs)
    run_sums = [0.0] * count
    nodes: Dict[str, Dict[str, Any]] = {}
    for event in events:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith(_KERNEL_SUFFIX):
            continue
        index = bisect.bisect_right(starts, event["ts"]) - 1  # the run this node event happened in
        if index < 0 or event["ts"] > runs[index]["ts"] + runs[index]["dur"]:
            continue  # a warm-up run's
        node = name[: -len(_KERNEL_SUFFIX)]
        row = nodes.setdefault(node, {"node": node, "op_type": event.get("args", {}).get("op_name", "?"),
                                      "per_run": [0.0] * count})
        row["per_run"][index] += float(event["dur"])
        run_sums[index] += float(event["dur"])
    operators = []
    for row in nodes.values():
        per_run = row.pop("per_run")
        total = sum(per_run)
        operators.append({**row, "total_us": round(total, 3), "mean_us": round(total / count, 3),
                          "median_us": round(statistics.median(per_run), 3)})
    operators.sort(key=lambda row: row["total_us"], reverse=True)
    return {
        "operators": operators,
        "runs": count,
        "sum_ms": round(statistics.median(run_sums) / 1000.0, 6) if count else 0.0,
        "session_run_ms": round(statistics.median(run["dur"] for run in runs) / 1000.0, 6) if count else 0.0,
    }


def format_per_op(result: Dict[str, Any], *, top: int = 10) -> List[str]:
    """Plain-text lines: the summary (sum vs p50), then the `top` slowest operators."""
    operators = result.get("per_op")
    if operators is None:
        return [result.get("per_op_note") or TFLITE_NOTE]
    summary = result["per_op_summary"]
    ratio = summary["sum_vs_p50"]
    lines = [
        f"per-operator time ({summary['profiler']} profiler, {summary['runs']} runs): operators add up to "
        f"{summary['sum_ms']:.4f} ms per run, {_percent(ratio)} of p50 {summary['p50_ms']:.4f} ms "
        f"(ONNX Runtime's whole run: {summary['session_run_ms']:.4f} ms)",
        f"  {_reading(ratio)}",
        f"  {'node':<48} {'op':<18} {'total ms':>9} {'mean µs':>9} {'median µs':>9} {'share':>6}",
    ]
    for row in operators[:top]:
        share = f"{row['share']:.1%}" if row.get("share") is not None else "-"
        lines.append(f"  {_short(row['node'], 48):<48} {_short(row['op_type'], 18):<18} "
                     f"{row['total_us'] / 1000.0:9.3f} {row['mean_us']:9.1f} {row['median_us']:9.1f} {share:>6}")
    rest = operators[top:]
    if rest:
        rest_share = sum(row.get("share") or 0.0 for row in rest)
        lines.append(f"  ... {len(rest)} more operators, {rest_share:.1%} of p50 together")
    return lines


def _percent(ratio: Optional[float]) -> str:
    return "?" if ratio is None else f"{ratio:.0%}"


def _reading(ratio: Optional[float]) -> str:
    """What the sum beside p50 says (see the module docstring)."""
    if ratio is None:
        return "no p50 to compare with"
    if ratio < 1.0 - CONSISTENT_WITHIN:
        return ("the rest of p50 is each run's fixed cost (the call, ONNX Runtime's executor, copies of inputs and "
                "outputs), not any operator")
    if ratio > 1.0 + CONSISTENT_WITHIN:
        return ("the profiler's own cost per node (µs each) inflates a model of many small operators: read the "
                "times as a ranking, not as exact shares")
    return f"operators account for p50 within {CONSISTENT_WITHIN:.0%}"


def _short(text: str, width: int) -> str:
    """`text`, its start cut when too long: node names differ at their end (…/conv_3/Relu)."""
    return text if len(text) <= width else "…" + text[-(width - 1):]
