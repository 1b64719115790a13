"""`edgeml train` and `edgeml explore` from the command line (in-process, real training)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.support.cli import edgeml, invoke


@pytest.mark.slow
def test_train_json_and_files(tmp_path):
    outdir = tmp_path / "wine"
    result = invoke("train", "--dataset", "wine", "--epochs", "5", "--width", "0.5", "--save-h5", "--no-plots",
                    "-o", str(outdir), "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)  # stdout is only the JSON; progress went to stderr
    assert metrics == json.loads((outdir / "metrics.json").read_text())
    assert metrics["model"]["width"] == 0.5 and metrics["training"]["epochs_run"] <= 5
    assert "parameters" in result.stderr and "KiB as float32" in result.stderr  # printed before training
    assert (outdir / "model.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    assert not (outdir / "training_curves.png").exists()


@pytest.mark.slow
def test_piped_train_shows_progress_on_stderr_and_only_json_on_stdout(tmp_path):
    """A real pipe (not a terminal): progress lines on stderr, one line per finished step; stdout is the JSON."""
    done = edgeml("train", "--dataset", "wine", "--epochs", "3", "--width", "0.5", "--no-plots",
                  "-o", tmp_path / "wine", "--json", check_exit=0)
    metrics = json.loads(done.stdout)  # the whole of stdout
    assert metrics == json.loads((tmp_path / "wine" / "metrics.json").read_text())
    lines = done.stderr.splitlines()
    assert any(line.startswith("data sklearn:wine: 178 examples") for line in lines)
    assert any(line.startswith("model ") and line.endswith("KiB as float32") for line in lines)
    epochs = metrics["training"]["epochs_run"]
    assert any(line.startswith(f"training: {epochs} epochs") and "best epoch" in line for line in lines)
    # Per-epoch counters are not logged one per line: at most the last epoch's ("[3/3]"), when all ran.
    assert not any("[1/3]" in line or "[2/3]" in line for line in lines)


@pytest.mark.slow
def test_train_results_on_stdout_and_progress_on_stderr(tmp_path):
    result = invoke("train", "--dataset", "wine", "--epochs", "2", "--width", "0.5", "--search", "2", "--no-plots",
                    "-o", tmp_path / "wine", check_exit=0)
    assert "hyper-parameter search" in result.stdout and "f1_macro" in result.stdout
    assert "test split:" in result.stdout and "trained " in result.stdout
    assert "trial 1/2 (width 0.5, depth 2, lr 0.001): " in result.stderr and "trial 2/2 (" in result.stderr
    assert "f1_macro" not in result.stderr and "trial 1/2" not in result.stdout


def test_explore_table(tmp_path, table_csv):
    outdir = tmp_path / "explore"
    result = invoke("explore", str(table_csv), "--target", "label", "-o", str(outdir), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    frame = pd.read_csv(table_csv)
    assert summary["rows"] == len(frame) and summary["duplicate_rows"] == 4
    assert summary["columns"]["weight"]["missing"] == int(frame["weight"].isna().sum()) > 0
    assert summary["columns"]["colour"]["top"] == frame["colour"].mode().iloc[0]
    assert summary["columns"]["size"]["mean"] == pytest.approx(frame["size"].mean())
    assert summary["class_balance"] == frame["label"].value_counts().sort_index().to_dict()
    for png in ("histograms.png", "correlation.png", "class_balance.png"):
        assert (outdir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((outdir / "summary.json").read_text())["rows"] == summary["rows"]


def test_explore_image_folder_and_builtin(tmp_path, image_folder):
    result = invoke("explore", str(image_folder), "-o", str(tmp_path / "a"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["class_balance"] == {"dark": 12, "light": 12}
    assert summary["width"]["min"] == 24 and summary["height"]["max"] == 20
    result = invoke("explore", "--dataset", "wine", "-o", str(tmp_path / "b"))
    assert result.exit_code == 0, result.output
    assert "class balance (target): 0: 59, 1: 71, 2: 48" in result.stdout  # a result: stdout


def test_explore_npz(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(40, dtype=np.float32).reshape(10, 4), y=np.arange(10) % 2)
    result = invoke("explore", str(tmp_path / "d.npz"), "--target", "y", "--no-plots", "-o", str(tmp_path / "out"),
                    "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary["columns"]) == ["x0", "x1", "x2", "x3", "y"]
    assert summary["class_balance"] == {"0": 5, "1": 5}


def test_explore_bad_input(tmp_path, table_csv):
    result = invoke("explore", str(table_csv), "--target", "nope", "-o", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: unknown target column 'nope'; "
                                     "columns are: size, colour, weight, label")
    assert not (tmp_path / "o").exists()
