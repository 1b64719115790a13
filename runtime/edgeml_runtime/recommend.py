"""Which artifact to ship: every passing artifact of a conversion, measured on one machine at each thread count,
and the fastest chosen (files within `tie_tolerance` of the fastest count as equally fast: the smaller one wins).

`edgeml convert` measures on the converting machine and writes the choice into its manifest under
`formats.RECOMMENDED_KEY`; `python -m edgeml_runtime select` measures again where the model will run. numpy and one
backend are all this needs.

    rows = measure(candidates(folder, manifest))
    manifest["recommended"] = recommendation(rows, machine_facts())

The figures are comparable within one call only: every (artifact, threads) configuration is loaded once, warmed up,
then timed in interleaved rounds (each round runs every configuration a few times, in a shuffled order), so a slow
moment of the machine costs every configuration alike. A configuration's p50 is the median over rounds of its
per-call time in that round.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from edgeml_runtime import formats
from edgeml_runtime.errors import EdgeMLError, first_line
from edgeml_runtime.progress import ProgressCallback, report

__all__ = [
    "DEFAULT_BUDGET_S",
    "REASON",
    "TIE_TOLERANCE",
    "Candidate",
    "candidates",
    "choose",
    "default_threads",
    "machine_facts",
    "measure",
    "parse_thread_counts",
    "recommendation",
]

DEFAULT_BUDGET_S = 2.0
TIE_TOLERANCE = 0.05  # p50s within 5% of the fastest: run-to-run noise on a quiet machine, not a real difference
REASON = f"fastest passing artifact; within {TIE_TOLERANCE:.0%} of the fastest, the smaller file (then fewer threads)"
MIN_ROUNDS = 5  # a median needs a few rounds, even when the budget is spent before
WARMUP_S = 0.02  # per configuration: first runs allocate and fill caches
SEGMENT_S = 0.002  # per configuration and round: calls enough that the timer's resolution does not matter
MAX_CALLS = 1000
MANY_CORES = 4  # above this, thread counts are powers of two (and the core count), not every count


@dataclass(frozen=True)
class Candidate:
    """A passing artifact the runtime can run. `relative`: its path as the manifest lists it (what rows name)."""

    path: Path
    format: str
    quantization: str
    bytes: int
    relative: Optional[str] = None

    @property
    def name(self) -> str:
        return self.relative or self.path.name


def candidates(folder: Path, manifest: dict) -> List[Candidate]:
    """The manifest's artifacts that passed validation and that the runtime runs (.tflite, .onnx, .ort; not TFLM
    sources, not Flex models), each path checked to stay inside `folder`."""
    from edgeml_runtime.documents import conversion_manifest_from_dict

    folder = Path(folder)
    parsed = conversion_manifest_from_dict(manifest, folder / formats.MANIFEST_FILE)
    found = []
    for artifact in parsed.passing:
        if artifact.format not in formats.FORMATS or artifact.entry.get("flex_ops"):
            continue
        size = artifact.entry.get("bytes")
        size = int(size) if isinstance(size, int) else _file_size(artifact.file)
        found.append(Candidate(artifact.file, artifact.format, artifact.quantization, size, artifact.path))
    return found


def default_threads(cores: Optional[int] = None) -> List[int]:
    """1..cores; on machines with many cores, 1, 2, 4, ... and the core count."""
    cores = max(1, cores or os.cpu_count() or 1)
    if cores <= MANY_CORES:
        return list(range(1, cores + 1))
    counts = {cores}
    count = 1
    while count < cores:
        counts.add(count)
        count *= 2
    return sorted(counts)


def parse_thread_counts(text: str) -> List[int]:
    """'1,2,4' -> [1, 2, 4]; ValueError saying what is wrong otherwise (the commands add the option's name)."""
    try:
        counts = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"expected numbers separated by commas, e.g. 1,2,4 (got '{text}')") from None
    if not counts or min(counts) < 1:
        raise ValueError("thread counts must be 1 or more")
    return counts


def measure(candidates: Sequence[Candidate], threads: Optional[Sequence[int]] = None,
            budget_s: float = DEFAULT_BUDGET_S, progress: ProgressCallback = None) -> List[dict]:
    """One row per (candidate, thread count), with its p50 in ms; a candidate that cannot be loaded or run here
    (backend not installed, damaged file) gets one row with `skipped`: the reason, and no p50."""
    thread_counts = sorted({int(count) for count in (threads or default_threads())})
    if not thread_counts or thread_counts[0] < 1:
        raise EdgeMLError(f"thread counts must be at least 1, got {list(threads or [])}")
    report(progress, "bench", f"measuring {len(candidates)} artifact(s) × {len(thread_counts)} thread count(s) "
                              f"({', '.join(map(str, thread_counts))})")
    configurations, skipped = _load_all(candidates, thread_counts)
    configurations = _warmed_up(configurations, skipped)
    _timed_rounds(configurations, budget_s)
    rows = [configuration.row() for configuration in configurations]
    order = {candidate.name: index for index, candidate in enumerate(candidates)}
    return sorted(rows + skipped, key=lambda row: (order.get(row["path"], 0), row.get("threads") or 0))


def choose(rows: List[dict], tie_tolerance: float = TIE_TOLERANCE) -> Optional[dict]:
    """The fastest measured row; rows within `tie_tolerance` of the fastest p50 count as ties, and the smallest file
    (then the fewest threads, then the faster) wins them. None when nothing was measured."""
    measured = [row for row in rows if row.get("p50_ms") is not None and not row.get("skipped")]
    if not measured:
        return None
    fastest = min(row["p50_ms"] for row in measured)
    ties = [row for row in measured if row["p50_ms"] <= fastest * (1.0 + tie_tolerance)]
    return min(ties, key=lambda row: (row["bytes"], row["threads"], row["p50_ms"]))


def recommendation(rows: List[dict], measured_on: dict) -> Optional[dict]:
    """The manifest's `recommended` object for `rows` measured on `measured_on` (`machine_facts()`), or None."""
    chosen = choose(rows)
    if chosen is None:
        return None
    return {"path": chosen["path"], "threads": chosen["threads"], "p50_ms": chosen["p50_ms"],
            "format": chosen["format"], "quantization": chosen["quantization"], "bytes": chosen["bytes"],
            "reason": REASON, "measured_on": measured_on, "table": rows}


def machine_facts() -> dict:
    """What the figures were measured on: bench's machine facts, the host name and the installed backends."""
    from edgeml_runtime.machine import machine_info

    return {"kind": "this machine", "hostname": socket.gethostname(), **machine_info(),
            "backends": _installed_backends()}


# --- measuring --------------------------------------------------------------------------------------------------


class _Configuration:
    """One candidate loaded with one thread count, its feeds, and its per-call time in each timed round."""

    def __init__(self, candidate: Candidate, threads: int, model, feeds):
        self.candidate, self.threads, self.model, self.feeds = candidate, threads, model, feeds
        self.calls = 1
        self.per_call_ms: List[float] = []

    def warm_up(self) -> Optional[str]:
        """Run until WARMUP_S has passed; size a round's calls from what a call took. The reason it fails, or None."""
        try:
            started, runs = time.perf_counter(), 0
            while runs < 2 or time.perf_counter() - started < WARMUP_S:
                self.model.run(self.feeds)
                runs += 1
        except Exception as error:  # noqa: BLE001 - a model that cannot run here is reported, not fatal
            return f"cannot run: {first_line(error)}"
        per_call = (time.perf_counter() - started) / runs
        self.calls = max(1, min(MAX_CALLS, int(SEGMENT_S / per_call) if per_call > 0 else MAX_CALLS))
        return None

    def time_round(self) -> None:
        run, feeds = self.model.run, self.feeds
        started = time.perf_counter()
        for _ in range(self.calls):
            run(feeds)
        self.per_call_ms.append((time.perf_counter() - started) * 1000.0 / self.calls)

    def row(self) -> dict:
        return {**_facts(self.candidate), "threads": self.threads, "backend": self.model.backend,
                "p50_ms": round(statistics.median(self.per_call_ms), 5), "runs": self.calls * len(self.per_call_ms)}


def _load_all(candidates: Sequence[Candidate], thread_counts: List[int]):
    """Every (candidate, threads) loaded once; a candidate that does not load is one skipped row."""
    from edgeml_runtime.bench import synthetic_inputs
    from edgeml_runtime.model import load

    configurations, skipped = [], []
    for candidate in candidates:
        try:
            models = [load(candidate.path, threads=count) for count in thread_counts]
            feeds = _as_apps_feed(synthetic_inputs(models[0].inputs, seed=0))
        except Exception as error:  # noqa: BLE001 - missing backend, damaged file: say why, measure the rest
            skipped.append(_skipped_row(candidate, first_line(error)))
            continue
        configurations += [_Configuration(candidate, count, model, feeds)
                           for count, model in zip(thread_counts, models)]
    return configurations, skipped


def _as_apps_feed(feeds: Dict[str, Any]):
    """Real values (quantizing them is part of the cost), and one array rather than a dict for a one-input model:
    what an app passes, and what Model.run's fast path serves."""
    return next(iter(feeds.values())) if len(feeds) == 1 else feeds


def _warmed_up(configurations: List[Any], skipped: List[dict]) -> List[Any]:
    """The configurations that ran; a candidate failing at any thread count becomes one skipped row."""
    failed = {}
    for configuration in configurations:
        if configuration.candidate.name not in failed:
            problem = configuration.warm_up()
            if problem:
                failed[configuration.candidate.name] = problem
                skipped.append(_skipped_row(configuration.candidate, problem))
    return [c for c in configurations if c.candidate.name not in failed]


def _timed_rounds(configurations: List[Any], budget_s: float) -> None:
    """Interleaved rounds until the budget is spent (at least MIN_ROUNDS), each in a new shuffled order: a thread
    pool still spinning after one configuration must not always slow down the same next one."""
    order = list(configurations)
    shuffler = random.Random(0)
    started, rounds = time.perf_counter(), 0
    while order and (rounds < MIN_ROUNDS or time.perf_counter() - started < budget_s):
        shuffler.shuffle(order)
        for configuration in order:
            configuration.time_round()
        rounds += 1


def _facts(candidate: Candidate) -> Dict[str, Any]:
    return {"path": candidate.name, "format": candidate.format, "quantization": candidate.quantization,
            "bytes": candidate.bytes}


def _skipped_row(candidate: Candidate, reason: str) -> dict:
    return {**_facts(candidate), "skipped": reason}


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _installed_backends() -> Dict[str, str]:
    return {name: version for name, version in formats.backend_versions().items() if version is not None}
