"""Bad model files give one clear ModelLoadError (exit 2 from the CLI), never a crash of the process."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap

import edgeml_runtime as er
import pytest

from tests.support.marks import model_params


def test_missing_file(tmp_path):
    with pytest.raises(er.ModelLoadError, match="model file not found: .*nope.tflite"):
        er.load(tmp_path / "nope.tflite")


def test_empty_file(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(er.ModelLoadError, match="only 0 bytes, not a model"):
        er.load(tmp_path / "empty.onnx")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(er.ModelLoadError, match="is a directory"):
        er.load(tmp_path)


def test_text_file_renamed_tflite(tmp_path):
    (tmp_path / "notes.tflite").write_text("these are my notes, not a model\n")
    with pytest.raises(er.ModelLoadError, match="not a valid TFLite model .*re-export it"):
        er.load(tmp_path / "notes.tflite")


def test_unknown_extension(tmp_path):
    (tmp_path / "model.pb").write_bytes(b"\x00" * 64)
    with pytest.raises(er.ModelLoadError, match="unknown model format '.pb'"):
        er.load(tmp_path / "model.pb")


@model_params("mlp_fp32.tflite", "mlp_fp32.onnx")
def test_truncated_file(tmp_path, data_dir, model_file):
    data = (data_dir / model_file).read_bytes()
    target = tmp_path / model_file
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(er.ModelLoadError, match="cannot load the model"):
        er.load(target)


@model_params("mlp_fp32.tflite", "mlp_fp32.onnx")
def test_bit_flipped_files_never_crash_the_process(tmp_path, data_dir, model_file):
    """Flip bytes all over the file; each variant must run, or fail with an EdgeMLError (one clear line).

    Runs in a child process so that a native crash shows up as a signal instead of killing pytest.
    """
    data = bytearray((data_dir / model_file).read_bytes())
    variants = []
    for index, position in enumerate(range(0, len(data), max(1, len(data) // 40))):
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        path = tmp_path / f"flip{index}{(data_dir / model_file).suffix}"
        path.write_bytes(bytes(flipped))
        variants.append(str(path))
    script = textwrap.dedent(
        """
        import sys, numpy as np, edgeml_runtime as er
        outcomes = {"loaded": 0, "refused": 0}
        for path in sys.argv[1:]:
            try:
                model = er.load(path)
                feeds = er.synthetic_inputs(model.inputs)
                model.run(feeds)
                outcomes["loaded"] += 1
            except er.EdgeMLError:
                outcomes["refused"] += 1
        print(outcomes)
        """
    )
    result = subprocess.run([sys.executable, "-c", script, *variants], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"process died ({result.returncode}): {result.stderr[-2000:]}"
    outcomes = ast.literal_eval(result.stdout.strip())
    assert outcomes["refused"] > 0 and outcomes["loaded"] + outcomes["refused"] == len(variants)
