"""The latency regression gate: today's `edgeml.bench/1` results against an earlier run's.

Results are matched on model file name, format, backend and thread count; a p50 slower than the
baseline's by more than `max_regression` (a fraction: 0.1 is 10 %) fails the gate. Nothing here prints:
`compare_to_baseline` returns one row per matched result and `check_regressions` raises `CheckFailed`.

    baseline = load_baseline("before.json")
    rows = compare_to_baseline(results, baseline, max_regression=0.1)
    check_regressions(rows, max_regression=0.1)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from edgeml_runtime.errors import CheckFailed, EdgeMLError
from edgeml_runtime.formats import BENCH_SCHEMA

__all__ = ["Comparison", "check_regressions", "compare_to_baseline", "comparison_key", "load_baseline"]


@dataclass(frozen=True)
class Comparison:
    """One result next to its baseline. `change` is the relative p50 change (+0.25: 25 % slower)."""

    model: str  # the model's file name
    format: str
    backend: str
    threads: int
    baseline_p50_ms: float
    p50_ms: float
    change: float
    regressed: bool

    def to_dict(self) -> dict:
        return {"model": self.model, "format": self.format, "backend": self.backend, "threads": self.threads,
                "baseline_p50_ms": self.baseline_p50_ms, "p50_ms": self.p50_ms, "change": self.change,
                "regressed": self.regressed}


def load_baseline(path: Union[str, os.PathLike]) -> List[dict]:
    """The results of an earlier `edgeml bench --json` (a list, or one result) from `path`."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise EdgeMLError(f"baseline file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EdgeMLError(f"baseline {path} is not JSON ({error}); create it with edgeml bench --json") from None
    results = data if isinstance(data, list) else [data]
    if not all(isinstance(result, dict) and result.get("schema") == BENCH_SCHEMA for result in results):
        raise EdgeMLError(f"baseline {path} is not {BENCH_SCHEMA} output; create it with edgeml bench --json")
    return results


def comparison_key(result: dict) -> Tuple[str, str, str, int]:
    """What makes two results comparable: model file name, format, backend and thread count."""
    return Path(result["model"]).name, result["format"], result["backend"], result["threads"]


def compare_to_baseline(results: Sequence[dict], baseline: Sequence[dict], max_regression: float) -> List[Comparison]:
    """One row per result that has a baseline, in the order of `results`.

    Raises EdgeMLError when no result matches the baseline at all (a gate that compares nothing would
    pass silently).
    """
    old: Dict[tuple, dict] = {comparison_key(result): result for result in baseline}
    rows = []
    for result in results:
        before = old.get(comparison_key(result))
        if before is None:
            continue
        name, fmt, backend, threads = comparison_key(result)
        baseline_p50, p50 = before["latency_ms"]["p50"], result["latency_ms"]["p50"]
        change = p50 / baseline_p50 - 1.0
        rows.append(Comparison(name, fmt, backend, threads, baseline_p50, p50, change, change > max_regression))
    if not rows:
        raise EdgeMLError("no result matches the baseline (same model name, format, backend and threads)")
    return rows


def check_regressions(rows: Sequence[Comparison], max_regression: float) -> None:
    """Raise CheckFailed (exit code 1) naming every row whose p50 regressed by more than max_regression."""
    failures = [f"{row.model} ({row.change:+.1%})" for row in rows if row.regressed]
    if failures:
        raise CheckFailed(f"p50 slower than the baseline by more than {max_regression:.0%}: {', '.join(failures)}")
