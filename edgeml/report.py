"""Self-contained HTML reports: one file next to the JSON it summarises, readable in any browser offline.

    edgeml quickstart          -> demo-output/report.html   (next to quickstart.json)
    edgeml convert             -> OUT/report.html           (next to manifest.json)
    edgeml bench --html FILE   -> FILE

What a report shows, where the facts exist: the artifact table (size, fidelity against the original,
accuracy where labels are known, p50/p90 latency, the recommended artifact); accuracy or fidelity against
size and latency as one scatter; the latency distribution of each artifact (from the benchmark's
percentiles); training curves and the confusion matrix of a model `edgeml train` made (its metrics.json);
the per-layer quantization error where the converter computed it (`validation.layers`).

Everything is inline: CSS in a <style> element, plots as inline SVG drawn here (no JavaScript, no fonts,
no images or links to fetch; a Content-Security-Policy forbids fetching anything). Fidelity is top-1
agreement only for models whose outputs are class scores; for others (autoencoders, regressors,
several outputs) it is cosine similarity and max abs diff.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from edgeml.console import format_ms, format_size

__all__ = [
    "REPORT_FILE",
    "ArtifactRow",
    "bench_report",
    "convert_report",
    "outputs_are_scores",
    "quickstart_report",
    "write_convert_report",
    "write_quickstart_report",
    "write_report",
]

REPORT_FILE = "report.html"
FORMAT_COLOURS = {"tflite": "#1f77b4", "onnx": "#ff7f0e", "ort": "#9467bd", "keras": "#7f7f7f",
                  "tflm": "#2ca02c"}
OTHER_COLOUR = "#8c564b"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@dataclass
class ArtifactRow:
    """One line of the artifact table (and one point of each plot)."""

    name: str
    format: str
    quantization: str
    bytes: Optional[int] = None
    accuracy: Optional[float] = None
    top1_agreement: Optional[float] = None
    cosine: Optional[float] = None
    max_abs_diff: Optional[float] = None
    latency_ms: Dict[str, float] = field(default_factory=dict)
    backend: str = ""
    threads: Optional[int] = None
    peak_rss_mb: Optional[float] = None
    passed: Optional[bool] = None
    recommended: bool = False
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.format} {self.quantization}".strip() + (f" ×{self.threads}" if self.threads else "")


# --- the three reports --------------------------------------------------------------------------------------


def quickstart_report(result: dict, manifest: Optional[dict] = None, metrics: Optional[dict] = None) -> str:
    """The report of `edgeml quickstart` (its quickstart.json as `result`)."""
    keras = result.get("keras") or {}
    entries = {entry.get("path"): entry for entry in (manifest or {}).get("artifacts", [])}
    recommended = _recommended_path(manifest)
    rows = []
    if keras:
        rows.append(ArtifactRow(name=Path(keras.get("path", "model.keras")).name, format="keras",
                                quantization=keras.get("quantization", "fp32"), bytes=keras.get("bytes"),
                                accuracy=keras.get("accuracy"), latency_ms=_latency(keras),
                                backend=keras.get("backend", "tensorflow"), note="the original"))
    for item in result.get("artifacts", []):
        relative = str(item.get("path", "")).split("/", 1)[-1]
        row = ArtifactRow(name=Path(relative).name, format=item["format"], quantization=item["quantization"],
                          bytes=item.get("bytes"), accuracy=item.get("accuracy"), latency_ms=_latency(item),
                          backend=item.get("backend", ""), passed=item.get("validation_passed"),
                          recommended=relative == recommended)
        _add_validation(row, entries.get(relative))
        rows.append(row)
    seconds = result.get("seconds") or {}
    subtitle = (f"built-in digits: train {seconds.get('train', 0):.0f} s, convert {seconds.get('convert', 0):.0f} s, "
                f"evaluate and benchmark {seconds.get('evaluate_and_bench', 0):.0f} s; accuracy on the held-out test "
                "split, through edgeml_runtime")
    page = Page("edgeml quickstart", subtitle)
    _artifact_sections(page, rows, scores=True, manifest=manifest)
    _training_sections(page, metrics)
    _layer_section(page, manifest)
    return page.render()


def convert_report(manifest: dict, metrics: Optional[dict] = None, *, scores: Optional[bool] = None) -> str:
    """The report of `edgeml convert` (its manifest.json); `metrics`: the source's metrics.json, if any."""
    recommended = _recommended_path(manifest)
    rows = []
    for entry in manifest.get("artifacts", []):
        row = ArtifactRow(name=entry["path"], format=entry.get("format", ""),
                          quantization=entry.get("quantization", ""),
                          bytes=entry.get("model_bytes", entry.get("bytes")), recommended=entry["path"] == recommended)
        _add_validation(row, entry)
        rows.append(row)
    source = manifest.get("source") or {}
    subtitle = (f"{source.get('path', '')} ({source.get('loader', source.get('kind', ''))}); every artifact checked "
                "against the original on the same inputs")
    page = Page("edgeml convert", subtitle)
    _artifact_sections(page, rows, scores=scores, manifest=manifest,
                       latency_hint="latency: run `edgeml bench DIR --html bench.html` on the target device")
    _training_sections(page, metrics)
    _layer_section(page, manifest)
    return page.render()


def bench_report(results: Sequence[dict], manifests: Optional[Dict[str, dict]] = None, *,
                 scores: Optional[bool] = None) -> str:
    """The report of `edgeml bench` (its edgeml.bench/1 results). `manifests`: model path -> its conversion
    manifest entry plus `recommended: true` for the manifest's recommended artifact, for models benchmarked
    from a conversion directory; `scores`: whether their outputs are class scores (None: unknown)."""
    manifests = manifests or {}
    rows = []
    for result in results:
        entry = manifests.get(str(Path(result["model"]).resolve()), {})
        quantization = result.get("quantization") or "fp32"
        if result.get("io_quantized") is False and quantization not in ("fp32", "fp16", "dynamic"):
            quantization += " (float I/O)"
        row = ArtifactRow(name=Path(result["model"]).name, format=result.get("format", ""),
                          quantization=quantization, bytes=result.get("model_bytes"),
                          latency_ms=dict(result.get("latency_ms") or {}),
                          backend=f"{result.get('backend', '')} {result.get('backend_version', '')}".strip(),
                          threads=result.get("threads"), peak_rss_mb=result.get("peak_rss_mb"),
                          recommended=bool(entry.get("recommended")))
        _add_validation(row, entry or None)
        rows.append(row)
    machine = results[0].get("machine", {}) if results else {}
    emulated = any((result.get("machine") or {}).get("emulated") for result in results)
    subtitle = (f"{machine.get('arch', '')}, {machine.get('cpu', '')}, {machine.get('cores', '?')} cores"
                + (" — EMULATED runs: not device latency" if emulated else ""))
    page = Page("edgeml bench", subtitle)
    _artifact_sections(page, rows, scores=scores, manifest=None, threads=True)
    page.note("peak RSS: the process's resident-memory high-water mark while the model loaded and ran (reset "
              "before each model on Linux), so it includes Python, numpy and the backend's libraries: compare "
              "rows with each other, not with the model's size.")
    return page.render()


def write_report(path, text: str) -> Path:
    """Write `text` to `path` through a temporary name (a reader never sees half a page)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def write_quickstart_report(outdir, result: dict) -> Path:
    """demo-output/report.html from quickstart.json's content, converted/manifest.json and model/metrics.json."""
    outdir = Path(outdir)
    manifest = _read_json(outdir / "converted" / "manifest.json")
    metrics = _read_json(outdir / "model" / "metrics.json")
    return write_report(outdir / REPORT_FILE, quickstart_report(result, manifest, metrics))


def write_convert_report(output_dir, manifest: dict) -> Path:
    """OUT/report.html next to manifest.json; training facts from metrics.json next to the source model."""
    output_dir = Path(output_dir)
    source = Path((manifest.get("source") or {}).get("path") or "")
    metrics = _read_json(source.parent / "metrics.json") if source.name else None
    scores = outputs_are_scores(output_dir, manifest)
    return write_report(output_dir / REPORT_FILE, convert_report(manifest, metrics, scores=scores))


def outputs_are_scores(directory, manifest: dict) -> Optional[bool]:
    """Whether a converted model's outputs are class scores: labels.json's task when it has one, else the
    runtime's guess (`edgeml_runtime.metadata.guess_task`) on the fp32 artifact; None when unknown."""
    directory = Path(directory)
    labels = _read_json(directory / (manifest.get("metadata") or {}).get("labels", "labels.json"))
    if labels and labels.get("task") in ("classification", "regression"):
        return labels["task"] == "classification"
    for entry in manifest.get("artifacts", []):
        if entry.get("quantization") == "fp32" and entry.get("format") in ("tflite", "onnx"):
            try:
                from edgeml_runtime import Predictor

                return Predictor.from_model(directory / entry["path"], threads=1).task == "classification"
            except Exception:  # noqa: BLE001 - no backend, a model that does not run here: unknown, not an error
                return None
    return None


# --- sections ------------------------------------------------------------------------------------------------


def _artifact_sections(page: Page, rows: List[ArtifactRow], *, scores: Optional[bool], manifest: Optional[dict],
                       latency_hint: str = "", threads: bool = False) -> None:
    if scores is None:  # top-1 agreement exists only for outputs that may be class scores
        scores = any(row.top1_agreement is not None for row in rows) and not any(
            row.top1_agreement is None and row.cosine is not None for row in rows)
    recommended = next((row for row in rows if row.recommended), None)
    if recommended is not None:
        reason = ""
        info = (manifest or {}).get("recommended")
        if isinstance(info, dict) and info.get("reason"):
            reason = f": {info['reason']}"
        page.callout(f"Recommended: <strong>{_e(recommended.name)}</strong>{_e(reason)}")
    page.section("Artifacts", artifact_table(rows, scores=scores, threads=threads))
    if len(rows) > 0:
        page.section("Trade-off: quality, size and latency", tradeoff_scatter(rows, scores=scores), figure=True)
    if any(row.latency_ms for row in rows):
        page.section("Latency distribution", latency_plot(rows), figure=True)
    elif latency_hint:
        page.note(latency_hint)


def _training_sections(page: Page, metrics: Optional[dict]) -> None:
    if not metrics:
        return
    history = (metrics.get("training") or {}).get("history") or {}
    if history:
        page.section("Training curves", training_curves(history), figure=True)
    test = metrics.get("test") or {}
    matrix = test.get("confusion_matrix")
    if matrix:
        classes = list((test.get("per_class") or {}).keys()) or [str(i) for i in range(len(matrix))]
        page.section(f"Confusion matrix ({test.get('samples', sum(map(sum, matrix)))} test samples)",
                     confusion_matrix(matrix, classes), figure=True)


def _layer_section(page: Page, manifest: Optional[dict]) -> None:
    layers, shares = [], True
    for entry in (manifest or {}).get("artifacts", []):
        check = entry.get("validation") or {}
        found = _layer_errors(check.get("layers"))
        shares = shares and all(key == "share" for *_, key in found)
        layers += [(entry["path"], name, value) for name, value, _ in found]
        if check.get("suggested_float"):
            page.note(f"{entry['path']}: --explain suggests keeping {', '.join(map(str, check['suggested_float']))} "
                      "in float")
    if layers:
        caption = ("share of the int8 artifact's output error that goes away when the layer stays in float "
                   "(edgeml convert --explain)" if shares else "error of each layer against the original")
        page.section("Per-layer quantization error", layer_plot(layers, caption=caption), figure=True)


# --- tables --------------------------------------------------------------------------------------------------


def artifact_table(rows: List[ArtifactRow], *, scores: bool, threads: bool = False) -> str:
    has = {
        "accuracy": any(row.accuracy is not None for row in rows),
        "top1": scores and any(row.top1_agreement is not None for row in rows),
        "cosine": any(row.cosine is not None for row in rows),
        "diff": any(row.max_abs_diff is not None for row in rows),
        "latency": any(row.latency_ms for row in rows),
        "backend": any(row.backend for row in rows),
        "check": any(row.passed is not None for row in rows),
    }
    fp32 = {row.format: row.bytes for row in rows if row.quantization == "fp32" and row.bytes}  # per format
    head = ["file", "format", "mode", "size", "× fp32"]
    head += ["accuracy"] if has["accuracy"] else []
    head += ["top-1"] if has["top1"] else []
    head += ["cosine"] if has["cosine"] else []
    head += ["max diff"] if has["diff"] else []
    head += ["p50", "p90"] if has["latency"] else []
    head += ["backend"] if has["backend"] else []
    head += ["threads"] if threads else []
    head += ["peak RSS"] if any(row.peak_rss_mb is not None for row in rows) else []
    head += ["check"] if has["check"] else []
    lines = ["<div class='scroll'><table class='artifacts'><thead><tr>",
             *(f"<th scope='col'>{_e(name)}</th>" for name in head), "</tr></thead><tbody>"]
    for row in rows:
        ratio = row.bytes / fp32[row.format] if row.bytes and fp32.get(row.format) else None
        cells = [_e(row.name) + (" <span class='badge'>recommended</span>" if row.recommended else ""),
                 _e(row.format), _e(row.quantization), _e(format_size(row.bytes)) if row.bytes else "-",
                 f"{ratio:.2f}" if ratio is not None else ""]
        if has["accuracy"]:
            cells.append("-" if row.accuracy is None else f"{row.accuracy:.2%}")
        if has["top1"]:
            cells.append("-" if row.top1_agreement is None else f"{row.top1_agreement:.1%}")
        if has["cosine"]:
            cells.append("-" if row.cosine is None else f"{row.cosine:.5f}")
        if has["diff"]:
            cells.append("-" if row.max_abs_diff is None else f"{row.max_abs_diff:.3g}")
        if has["latency"]:
            cells += [_e(format_ms(row.latency_ms.get("p50"))), _e(format_ms(row.latency_ms.get("p90")))]
        if has["backend"]:  # the name; its version in the tooltip (keeps the table within the page)
            name, _, version = row.backend.partition(" ")
            cells.append(f"<span title='{_e(row.backend)}'>{_e(name)}</span>" if version else _e(name))
        if threads:
            cells.append("-" if row.threads is None else str(row.threads))
        if "peak RSS" in head:
            peak = row.peak_rss_mb
            cells.append("-" if peak is None else _e(format_size(peak * 1024 * 1024)))
        if has["check"]:
            cells.append("-" if row.passed is None else ("<span class='ok'>ok</span>" if row.passed
                                                          else "<span class='bad'>FAILED</span>"))
        css = " class='recommended'" if row.recommended else ""
        lines.append(f"<tr{css}>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    lines.append("</tbody></table></div>")
    notes = []
    if has["top1"] or has["cosine"] or has["diff"]:
        notes.append(("top-1: how often the artifact predicts the same class as the original; " if has["top1"]
                      else "") + "cosine, max diff: its outputs against the original's on the same inputs")
    if has["latency"]:
        notes.append("p50, p90: single-sample latency percentiles")
    if notes:
        lines.append(f"<p class='note'>{_e('; '.join(notes))}.</p>")
    return "".join(lines)


# --- plots (inline SVG) ----------------------------------------------------------------------------------------


class Axis:
    """A linear or log10 axis mapping [lo, hi] onto [start, end] pixels, with readable ticks."""

    def __init__(self, values: Iterable[float], start: float, end: float, *, log: Optional[bool] = None,
                 pad: float = 0.08, include: Sequence[float] = (), upper: Optional[float] = None,
                 integer: bool = False):
        values = [float(v) for v in values if v is not None and math.isfinite(v)] + list(include)
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        self.log = bool(log) if log is not None else (lo > 0 and hi / lo > 20)
        if self.log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi - lo < 1e-12:
            span = abs(lo) * 0.1 or (0.5 if self.log else 1.0)
            lo, hi = lo - span, hi + span
        margin = (hi - lo) * pad
        self.lo, self.hi = lo - margin, hi + margin
        if upper is not None and not self.log and self.hi > upper:  # 100 % is the top of a percentage
            self.hi = min(self.hi, upper + (upper - self.lo) * 0.04)
        self.integer = integer
        self.start, self.end = start, end

    def pos(self, value: float) -> float:
        value = math.log10(value) if self.log else value
        return self.start + (value - self.lo) / (self.hi - self.lo) * (self.end - self.start)

    def ticks(self) -> List[Tuple[float, str]]:
        if self.log:
            first, last = math.floor(self.lo), math.ceil(self.hi)
            steps = (1, 2, 5) if last - first <= 3 else (1,)
            values = [m * 10.0 ** e for e in range(first, last + 1) for m in steps]
            return [(v, _number(v)) for v in values if self.lo <= math.log10(v) <= self.hi]
        raw = (self.hi - self.lo) / 5
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
        if self.integer:
            step = max(1, math.ceil(step))
        first = math.ceil(self.lo / step) * step
        values = []
        value = first
        while value <= self.hi + step * 1e-9:
            values.append(round(value, 12))
            value += step
        return [(v, _number(v)) for v in values]


def _svg(width: int, height: int, label: str, body: List[str]) -> str:
    return (f"<svg role='img' aria-label='{_e(label)}' width='{width}' "
            f"height='{height}' viewBox='0 0 {width} {height}' font-family='DejaVu Sans, Arial, sans-serif' "
            f"font-size='12'><title>{_e(label)}</title>" + "".join(body) + "</svg>")


def _axes(x: Axis, y: Axis, *, x_label: str, y_label: str, top: float, left: float, bottom: float,
          right: float) -> List[str]:
    body = [f"<rect x='{left}' y='{top}' width='{right - left}' height='{bottom - top}' fill='#fafafa' "
            "stroke='#ccc'/>"]
    for value, text in x.ticks():
        px = x.pos(value)
        body.append(f"<line x1='{px:.1f}' y1='{top}' x2='{px:.1f}' y2='{bottom}' stroke='#e6e6e6'/>")
        body.append(f"<text x='{px:.1f}' y='{bottom + 16}' text-anchor='middle' fill='#444'>{_e(text)}</text>")
    for value, text in y.ticks():
        py = y.pos(value)
        body.append(f"<line x1='{left}' y1='{py:.1f}' x2='{right}' y2='{py:.1f}' stroke='#e6e6e6'/>")
        body.append(f"<text x='{left - 6}' y='{py + 4:.1f}' text-anchor='end' fill='#444'>{_e(text)}</text>")
    body.append(f"<text x='{(left + right) / 2:.1f}' y='{bottom + 36}' text-anchor='middle'>{_e(x_label)}</text>")
    body.append(f"<text transform='translate({left - 52},{(top + bottom) / 2:.1f}) rotate(-90)' "
                f"text-anchor='middle'>{_e(y_label)}</text>")
    return body


def tradeoff_scatter(rows: List[ArtifactRow], *, scores: bool) -> str:
    """Quality (accuracy, else top-1 agreement for class scores, else cosine; latency when none is known) vs
    size; each point says its p50 latency, and slower points are drawn larger."""
    points = [row for row in rows if row.bytes]
    quality, y_label, y_scale = _quality(points, scores)
    width, height, left, right, top, bottom = 900, 380, 80, 560, 20, 320
    x = Axis([row.bytes / 1024 for row in points], left, right)
    if quality is None:  # nothing but speed is known: latency vs size
        values = [row.latency_ms.get("p50") for row in points]
        y = Axis(values, bottom, top)
        y_label, y_scale = "p50 latency (ms)", 1.0
        quality = values
    else:
        y = Axis([value * y_scale for value in quality if value is not None], bottom, top, log=False,
                 upper=100.0 if y_scale == 100.0 else 1.0)
    body = _axes(x, y, x_label="size (KiB" + (", log scale)" if x.log else ")"), y_label=y_label, top=top,
                 left=left, bottom=bottom, right=right)
    latencies = [row.latency_ms.get("p50") for row in points if row.latency_ms.get("p50")]
    slowest = max(latencies, default=None)
    labels = _LabelPlacer(left, right, top, bottom)
    placed = []
    for row, value in sorted((item for item in zip(points, quality) if item[1] is not None),
                             key=lambda item: (-item[1], item[0].bytes)):
        p50 = row.latency_ms.get("p50")
        radius = 5 + (9 * math.sqrt(p50 / slowest) if p50 and slowest else 0)
        px, py = x.pos(row.bytes / 1024), y.pos(value * y_scale)
        labels.boxes.append((px - radius, py - radius, px + radius, py + radius))  # labels avoid every point
        placed.append((row, value, p50, radius, px, py))
    for row, value, p50, radius, px, py in placed:
        colour = FORMAT_COLOURS.get(row.format, OTHER_COLOUR)
        text = row.label + (f" · {format_ms(p50)}" if p50 else "")
        body.append(f"<g class='point'><circle cx='{px:.1f}' cy='{py:.1f}' r='{radius:.1f}' fill='{colour}' "
                    f"fill-opacity='0.75' stroke='#222' stroke-width='{2 if row.recommended else 0.5}'>"
                    f"<title>{_e(row.name)}: {_e(format_size(row.bytes))}, {_e(y_label)} "
                    f"{value * y_scale:.4g}{', p50 ' + format_ms(p50) if p50 else ''}</title></circle>"
                    f"{labels.place(text, px, py, radius)}</g>")
    body += _legend([row.format for row in points], width - 130, top + 10,
                    extra=["larger = slower (p50)"] if latencies else ["latency not measured"])
    return _svg(width, height, f"{y_label} against size", body)


class _LabelPlacer:
    """Point labels that do not overlap: beside the point (right, else left), moved down or up a line at a
    time until free, with a leader line when moved."""

    CHAR, LINE = 6.4, 14  # width of a character and height of a line at font-size 11

    def __init__(self, left: float, right: float, top: float, bottom: float):
        self.left, self.right, self.top, self.bottom = left, right, top, bottom
        self.boxes: List[Tuple[float, float, float, float]] = []

    def place(self, text: str, px: float, py: float, radius: float) -> str:
        width = len(text) * self.CHAR
        for shift in (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6):
            y = py + 4 + shift * self.LINE
            gap = radius + 3 if shift == 0 else 6
            for x, anchor in ((px + gap, "start"), (px - gap, "end")):
                x0 = x if anchor == "start" else x - width
                box = (x0, y - 11, x0 + width, y + 3)
                if x0 < self.left - 70 or box[2] > self.right + 150 or box[1] < 0 or box[3] > self.bottom + 30:
                    continue
                if any(_overlap(box, other) for other in self.boxes):
                    continue
                self.boxes.append(box)
                leader = (f"<line x1='{px:.1f}' y1='{py:.1f}' x2='{x:.1f}' y2='{y - 4:.1f}' stroke='#999' "
                          "stroke-width='0.7'/>") if shift else ""
                return (f"{leader}<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' font-size='11'>"
                        f"{_e(text)}</text>")
        return ""  # no room: the point's tooltip still names it


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _quality(rows: List[ArtifactRow], scores: bool) -> Tuple[Optional[List[Optional[float]]], str, float]:
    if any(row.accuracy is not None for row in rows):
        return [row.accuracy for row in rows], "accuracy (%)", 100.0
    if scores and any(row.top1_agreement is not None for row in rows):
        return [row.top1_agreement for row in rows], "top-1 agreement with the original (%)", 100.0
    if any(row.cosine is not None for row in rows):
        return [row.cosine for row in rows], "cosine similarity to the original", 1.0
    return None, "", 1.0


def _legend(formats: Iterable[str], x: float, y: float, extra: Sequence[str] = ()) -> List[str]:
    body, line = [], 0
    for name in dict.fromkeys(formats):
        colour = FORMAT_COLOURS.get(name, OTHER_COLOUR)
        body.append(f"<circle cx='{x + 6}' cy='{y + line * 20}' r='6' fill='{colour}' fill-opacity='0.75'/>"
                    f"<text x='{x + 18}' y='{y + line * 20 + 4}'>{_e(name)}</text>")
        line += 1
    for text in extra:
        body.append(f"<text x='{x}' y='{y + line * 20 + 4}' fill='#555' font-size='11'>{_e(text)}</text>")
        line += 1
    return body


def latency_plot(rows: List[ArtifactRow]) -> str:
    """One line per artifact: min to max (thin), p50 to p90 (thick), p99 and p50 marked."""
    measured = [row for row in rows if row.latency_ms]
    row_height, left, right, top = 30, 260, 700, 16
    bottom = top + row_height * len(measured)
    width, height = 760, bottom + 50
    values = [v for row in measured for k, v in row.latency_ms.items() if k in ("min", "p50", "p90", "p99", "max")]
    x = Axis(values, left, right)
    body = [f"<rect x='{left}' y='{top}' width='{right - left}' height='{bottom - top}' fill='#fafafa' stroke='#ccc'/>"]
    for value, text in x.ticks():
        px = x.pos(value)
        body.append(f"<line x1='{px:.1f}' y1='{top}' x2='{px:.1f}' y2='{bottom}' stroke='#e6e6e6'/>"
                    f"<text x='{px:.1f}' y='{bottom + 16}' text-anchor='middle' fill='#444'>{_e(text)}</text>")
    body.append(f"<text x='{(left + right) / 2}' y='{bottom + 36}' text-anchor='middle'>latency per inference "
                f"(ms{', log scale' if x.log else ''})</text>")
    for index, row in enumerate(measured):
        cy = top + row_height * index + row_height / 2
        stats = row.latency_ms
        colour = FORMAT_COLOURS.get(row.format, OTHER_COLOUR)
        name = row.name + (f" ×{row.threads}" if row.threads else "")
        parts = [f"<g class='latency'><text x='{left - 8}' y='{cy + 4:.1f}' text-anchor='end'>{_e(name)}</text>"]
        if "min" in stats and "max" in stats:
            parts.append(f"<line x1='{x.pos(stats['min']):.1f}' y1='{cy}' x2='{x.pos(stats['max']):.1f}' y2='{cy}' "
                         f"stroke='{colour}' stroke-opacity='0.5' stroke-width='1.5'/>")
        if "p50" in stats and "p90" in stats:
            parts.append(f"<line x1='{x.pos(stats['p50']):.1f}' y1='{cy}' x2='{x.pos(stats['p90']):.1f}' y2='{cy}' "
                         f"stroke='{colour}' stroke-width='10'/>")
        if "p99" in stats:
            px = x.pos(stats["p99"])
            parts.append(f"<line x1='{px:.1f}' y1='{cy - 7}' x2='{px:.1f}' y2='{cy + 7}' stroke='{colour}' "
                         "stroke-width='2'/>")
        if "p50" in stats:
            px = x.pos(stats["p50"])
            parts.append(f"<circle cx='{px:.1f}' cy='{cy}' r='4' fill='#111'/>")
        summary = ", ".join(f"{key} {format_ms(stats[key])}" for key in ("min", "p50", "p90", "p99", "max")
                            if key in stats)
        parts.append(f"<title>{_e(row.name)}: {_e(summary)}</title></g>")
        body.append("".join(parts))
    caption = "dot: p50; thick bar: p50 to p90; tick: p99; thin line: min to max"
    body.append(f"<text x='{left}' y='{height - 4}' fill='#555' font-size='11'>{_e(caption)}</text>")
    return _svg(width, height, "latency distribution per artifact", body)


def training_curves(history: Dict[str, List[float]]) -> str:
    """A panel per metric (loss first): training and validation by epoch."""
    names = [name for name in history if not name.startswith("val_") and history[name]]
    names.sort(key=lambda name: (name != "loss", name))
    names = names[:2]
    panel_width, height = 370, 300
    width = panel_width * max(1, len(names)) + 20
    body = []
    for panel, name in enumerate(names):
        offset = panel * panel_width
        left, right, top, bottom = offset + 70, offset + panel_width - 10, 30, height - 50
        series = [(name, history[name], "#1f77b4"), (f"val_{name}", history.get(f"val_{name}") or [], "#ff7f0e")]
        epochs = max(len(values) for _, values, _ in series)
        x = Axis(range(1, epochs + 1), left, right, log=False, pad=0.02, integer=True)
        y = Axis([v for _, values, _ in series for v in values], bottom, top, log=False)
        body += _axes(x, y, x_label="epoch", y_label=name, top=top, left=left, bottom=bottom, right=right)
        for index, (label, values, colour) in enumerate(series):
            if not values:
                continue
            path = " ".join(f"{'M' if i == 0 else 'L'}{x.pos(i + 1):.1f},{y.pos(v):.1f}" for i, v in enumerate(values))
            body.append(f"<path class='curve' d='{path}' fill='none' stroke='{colour}' stroke-width='2'>"
                        f"<title>{_e(label)}: last {values[-1]:.4g}</title></path>")
            body.append(f"<text x='{left + 8 + index * 110}' y='{top - 10}' fill='{colour}'>{_e(label)}</text>")
    return _svg(width, height, "training curves", body)


def confusion_matrix(matrix: List[List[int]], classes: List[str]) -> str:
    """Rows: true class; columns: predicted; shade: the share of the row."""
    count = len(matrix)
    cell = max(14, min(40, 420 // max(count, 1)))
    left, top = 90, 40
    width, height = left + cell * count + 30, top + cell * count + 50
    body = [f"<text x='{left + cell * count / 2}' y='16' text-anchor='middle'>predicted</text>",
            f"<text transform='translate(16,{top + cell * count / 2}) rotate(-90)' text-anchor='middle'>true</text>"]
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        body.append(f"<text x='{left - 6}' y='{top + i * cell + cell / 2 + 4}' text-anchor='end'>"
                    f"{_e(_short(classes[i] if i < len(classes) else str(i)))}</text>")
        for j, value in enumerate(row):
            share = value / total
            shade = f"rgb({int(255 - 200 * share)},{int(255 - 120 * share)},{int(255 - 40 * share)})"
            body.append(f"<rect class='cell' x='{left + j * cell}' y='{top + i * cell}' width='{cell}' height='{cell}' "
                        f"fill='{shade}' stroke='#fff'><title>true {_e(classes[i] if i < len(classes) else i)}, "
                        f"predicted {_e(classes[j] if j < len(classes) else j)}: {value}</title></rect>")
            if cell >= 22 and value:
                colour = "#fff" if share > 0.6 else "#222"
                body.append(f"<text x='{left + j * cell + cell / 2}' y='{top + i * cell + cell / 2 + 4}' "
                            f"text-anchor='middle' font-size='11' fill='{colour}'>{value}</text>")
    for j in range(count):
        body.append(f"<text x='{left + j * cell + cell / 2}' y='{top - 6}' text-anchor='middle' font-size='11'>"
                    f"{_e(_short(classes[j] if j < len(classes) else str(j)))}</text>")
    return _svg(width, height, "confusion matrix", body)


def layer_plot(layers: List[Tuple[str, str, float]], limit: int = 40, *,
               caption: str = "error of each layer against the original") -> str:
    """Bars of the per-layer error (the worst `limit` layers when there are more)."""
    shown = layers if len(layers) <= limit else sorted(layers, key=lambda item: -item[2])[:limit]
    row_height, left, right, top = 18, 320, 700, 10
    bottom = top + row_height * len(shown)
    width, height = 760, bottom + 40
    x = Axis([value for *_, value in shown], left, right, log=False, include=[0.0])
    body = []
    for value, text in x.ticks():
        px = x.pos(value)
        body.append(f"<line x1='{px:.1f}' y1='{top}' x2='{px:.1f}' y2='{bottom}' stroke='#e6e6e6'/>"
                    f"<text x='{px:.1f}' y='{bottom + 16}' text-anchor='middle' fill='#444'>{_e(text)}</text>")
    for index, (artifact, name, value) in enumerate(shown):
        y = top + index * row_height
        body.append(f"<g class='layer'><text x='{left - 6}' y='{y + 13}' text-anchor='end' font-size='11'>"
                    f"{_e(_short(f'{artifact}: {name}', 48))}</text><rect x='{x.pos(0):.1f}' y='{y + 3}' "
                    f"width='{max(0.5, x.pos(value) - x.pos(0)):.1f}' height='{row_height - 6}' fill='#d62728'>"
                    f"<title>{_e(artifact)} {_e(name)}: {value:.4g}</title></rect></g>")
    worst = f" (the {limit} worst)" if len(layers) > limit else ""
    body.append(f"<text x='{left - 300}' y='{height - 4}' fill='#555' font-size='11'>{_e(caption + worst)}</text>")
    return _svg(width, height, "per-layer quantization error", body)


LAYER_METRICS = ("share", "error_reduction", "relative_error", "relative_max_abs_diff", "error", "max_abs_diff",
                 "rmse", "mse")


def _layer_errors(layers: Any) -> List[Tuple[str, float, str]]:
    """(layer name, value, metric) from `validation.layers`: `edgeml convert --explain` writes a list of
    {name, op, share, error_reduction, ...} (share: the part of the int8 output error that goes away with the
    layer in float); a mapping name -> number or name -> {metric} is read too."""
    if not layers:
        return []
    items = layers.items() if isinstance(layers, dict) else (
        (item.get("name", str(index)), item) for index, item in enumerate(layers) if isinstance(item, dict))
    found = []
    for name, value in items:
        number, metric = _layer_number(value)
        if number is not None:
            op = value.get("op") if isinstance(value, dict) else None
            found.append((f"{name} ({op})" if op else str(name), number, metric))
    return found


def _layer_number(value) -> Tuple[Optional[float], str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), "value"
    if isinstance(value, dict):
        for key in LAYER_METRICS:
            if isinstance(value.get(key), (int, float)) and not isinstance(value.get(key), bool):
                return float(value[key]), key
        if isinstance(value.get("cosine"), (int, float)):
            return 1.0 - float(value["cosine"]), "1 - cosine"
    return None, ""


# --- the page --------------------------------------------------------------------------------------------------

STYLE = """
body { font-family: 'DejaVu Sans', Arial, sans-serif; margin: 24px auto; max-width: 1100px; color: #222;
       padding: 0 16px; line-height: 1.4; }
h1 { font-size: 24px; margin-bottom: 4px; }
h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.subtitle, .generated { color: #555; margin-top: 0; }
.scroll { overflow-x: auto; }
table.artifacts { border-collapse: collapse; font-size: 12.5px; }
table.artifacts th, table.artifacts td { border-bottom: 1px solid #e3e3e3; padding: 4px 6px; text-align: right;
       white-space: nowrap; }
table.artifacts th:nth-child(-n+3), table.artifacts td:nth-child(-n+3) { text-align: left; }
table.artifacts thead th { background: #f3f3f3; }
tr.recommended { background: #eef7ee; }
.badge { background: #2ca02c; color: #fff; border-radius: 3px; padding: 1px 5px; font-size: 11px; }
.ok { color: #2a7a2a; } .bad { color: #c62828; font-weight: bold; }
.callout { background: #eef7ee; border-left: 4px solid #2ca02c; padding: 8px 12px; }
.note { color: #555; font-size: 13px; }
figure { margin: 8px 0; } svg { max-width: 100%; height: auto; }
"""


class Page:
    def __init__(self, title: str, subtitle: str = ""):
        self.title, self.subtitle = title, subtitle
        self.parts: List[str] = []

    def section(self, heading: str, content: str, *, figure: bool = False) -> None:
        body = f"<figure>{content}</figure>" if figure else content
        self.parts.append(f"<section><h2>{_e(heading)}</h2>{body}</section>")

    def callout(self, markup: str) -> None:
        self.parts.append(f"<p class='callout'>{markup}</p>")

    def note(self, text: str) -> None:
        self.parts.append(f"<p class='note'>{_e(text)}</p>")

    def render(self) -> str:
        from edgeml import __version__

        generated = f"written {datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')} by edgeml {__version__}"
        return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
                "<meta name='viewport' content='width=device-width, initial-scale=1'>"
                f"<title>{_e(self.title)}</title><style>{STYLE}</style></head><body>"
                f"<h1>{_e(self.title)}</h1><p class='subtitle'>{_e(self.subtitle)}</p>"
                + "".join(self.parts) + f"<p class='generated'>{_e(generated)}</p></body></html>\n")


# --- helpers -----------------------------------------------------------------------------------------------------


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.001:
        return f"{value:.0e}" if abs(value) < 0.001 else f"{value:,.0f}"
    return f"{value:.4g}"


def _short(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _latency(item: dict) -> Dict[str, float]:
    stats = dict(item.get("latency_ms") or {})
    if not stats and item.get("p50_ms") is not None:
        stats["p50"] = item["p50_ms"]
    return stats


def _add_validation(row: ArtifactRow, entry: Optional[dict]) -> None:
    if not entry:
        return
    check = entry.get("validation") or {}
    row.top1_agreement = check.get("top1_agreement")
    row.cosine = check.get("cosine")
    row.max_abs_diff = check.get("max_abs_diff")
    if "passed" in check and row.passed is None:
        row.passed = bool(check["passed"])


def _recommended_path(manifest: Optional[dict]) -> Optional[str]:
    recommended = (manifest or {}).get("recommended")
    if isinstance(recommended, dict):
        return recommended.get("path")
    return recommended if isinstance(recommended, str) else None


def _read_json(path: Path) -> Optional[dict]:
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None
