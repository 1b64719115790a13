"""The HTML reports (edgeml.report), opened in a real headless Chromium: the rendered DOM holds the artifact
table and the plots, the screenshot is a real page, and nothing is fetched from the network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.browser import network_references, render
from tests.support.cli import edgeml
from tests.support.models import DATA, MLP_FP32, MLP_ONNX

FAST = ["--runs", "10", "--min-seconds", "0"]


def header_and_rows(page, index=0):
    table = page.tables[index]
    return table[0], table[1:]


def check_self_contained(report: Path) -> None:
    assert network_references(report) == []
    text = report.read_text()
    assert "Content-Security-Policy" in text and "default-src 'none'" in text  # the browser may fetch nothing
    assert "<script" not in text


def test_bench_html_report(tmp_path):
    report = tmp_path / "bench.html"
    done = edgeml("bench", MLP_FP32, MLP_ONNX, "--threads", "1", *FAST, "--html", report, check_exit=0)
    assert f"report: {report}" in done.stdout
    check_self_contained(report)
    page = render(report, tmp_path)
    header, rows = header_and_rows(page)
    assert header[:4] == ["file", "format", "mode", "size"] and "p50" in header and "p90" in header
    assert [row[0] for row in rows] == ["mlp_fp32.tflite", "mlp_fp32.onnx"]
    p50 = header.index("p50")
    assert all(row[p50].endswith(" ms") for row in rows)
    assert page.count("svg") == 2  # the trade-off scatter (latency vs size: no fidelity known) and the latency plot
    assert page.count("circle") >= 2 and "latency distribution" in page.dom
    assert "peak RSS" in page.text  # what the memory column measures is said on the page
    width, height = page.screenshot_size
    assert width == 1100 and height == 1600 and page.screenshot.stat().st_size > 20_000


def test_convert_report_of_a_trained_model(digits_run, tmp_path):
    """`edgeml convert` writes OUT/report.html: the artifact table with fidelity, the trade-off plot, and the
    training curves and confusion matrix from the trainer's metrics.json."""
    report = digits_run.converted / "report.html"
    assert f"report: {report}" in digits_run.convert.stdout
    check_self_contained(report)
    manifest = json.loads((digits_run.converted / "manifest.json").read_text())
    page = render(report, tmp_path)
    header, rows = header_and_rows(page)
    assert {"top-1", "cosine", "max diff", "check"} <= set(header)  # digits: class scores, so top-1 is shown
    # Each artifact by name; the one the conversion measured fastest carries the "recommended" badge.
    assert [row[0].removesuffix(" recommended") for row in rows] == [entry["path"] for entry in manifest["artifacts"]]
    assert [row[0] for row in rows if row[0].endswith(" recommended")] == [f"{manifest['recommended']['path']} "
                                                                           "recommended"]
    assert f"Recommended: {manifest['recommended']['path']} : fastest passing artifact" in page.text
    assert all(row[header.index("check")] == "ok" for row in rows)
    assert all(row[header.index("size")].endswith(("KiB", "MiB")) for row in rows)
    headings = [heading for heading in ("Trade-off", "Training curves", "Confusion matrix") if heading in page.text]
    assert headings == ["Trade-off", "Training curves", "Confusion matrix"]
    assert page.count("svg") == 3 and page.count("path") >= 4  # loss, val_loss, accuracy, val_accuracy
    assert page.dom.count("class=\"cell\"") == 100  # 10 x 10 confusion matrix
    assert page.screenshot.stat().st_size > 20_000


def test_recommended_artifact_and_layer_errors_are_shown(tmp_path):
    """Facts a manifest may carry (the recommended artifact, per-layer errors): shown when present."""
    for name in (MLP_FP32.name, MLP_ONNX.name):
        shutil.copyfile(DATA / name, tmp_path / name)
    check = {"passed": True, "cosine": 0.9991, "max_abs_diff": 0.012, "top1_agreement": 0.98,
             "layers": [{"name": "dense", "op": "MatMul", "error_in_float": 0.01, "error_reduction": 0.03,
                         "share": 0.75}, {"name": "probabilities", "op": "MatMul", "error_in_float": 0.035,
                                          "error_reduction": 0.005, "share": 0.125}],
             "suggested_float": ["dense"]}  # as `edgeml convert --explain` writes them
    manifest = {"schema": "edgeml.manifest/1", "source": {"path": str(tmp_path / "mlp.keras"), "kind": "keras"},
                "recommended": {"path": MLP_ONNX.name, "reason": "smallest that passes"},
                "artifacts": [{"path": MLP_FP32.name, "format": "tflite", "quantization": "fp32", "bytes": 2228,
                               "validation": {"passed": True, "cosine": 1.0, "max_abs_diff": 1e-7,
                                              "top1_agreement": 1.0}},
                              {"path": MLP_ONNX.name, "format": "onnx", "quantization": "int8", "bytes": 1450,
                               "validation": check}]}
    from edgeml.report import write_convert_report

    report = write_convert_report(tmp_path, manifest)
    check_self_contained(report)
    page = render(report, tmp_path)
    header, rows = header_and_rows(page)
    assert rows[1][0] == "mlp_fp32.onnx recommended"
    assert "Recommended: mlp_fp32.onnx : smallest that passes" in page.text  # text nodes joined by spaces
    assert "Per-layer quantization error" in page.text and "dense (MatMul)" in page.text
    assert "share of the int8 artifact's output error" in page.text and "suggests keeping dense in float" in page.text
    assert page.dom.count("class=\"layer\"") == 2


@pytest.mark.parametrize("model", ["autoencoder_fp32.tflite", "two_io_fp32.tflite"])
def test_models_without_class_scores_get_no_top1_column(tmp_path, model):
    """An autoencoder or a multi-output model: fidelity is cosine and max diff, never top-1 agreement."""
    from edgeml.report import outputs_are_scores, write_convert_report

    shutil.copyfile(DATA / model, tmp_path / model)
    manifest = {"schema": "edgeml.manifest/1", "source": {"path": "model.keras"},
                "artifacts": [{"path": model, "format": "tflite", "quantization": "fp32", "bytes": 1000,
                               "validation": {"passed": True, "cosine": 0.99999, "max_abs_diff": 2e-6,
                                              "top1_agreement": 0.97}}]}
    assert outputs_are_scores(tmp_path, manifest) is False
    page = render(write_convert_report(tmp_path, manifest), tmp_path)
    header, _ = header_and_rows(page)
    assert "top-1" not in header and {"cosine", "max diff"} <= set(header)
    assert "cosine similarity to the original" in page.dom  # the scatter's quality axis
