"""Hostile input files and models that ask for too much, through the commands a user runs: one line on
stderr, exit code 2, nothing allocated beyond the stated limit (edgeml_runtime.arrayfiles), never an
"internal error". The same files go to `edgeml convert --calibration` (edgeml_converters.calibration) and
to `edgeml train` (tests/trainer/test_bad_data.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from edgeml_runtime import InputError
from edgeml_runtime.arrayfiles import MAX_ARRAY_BYTES, read_array_file

from tests.security import hostile_files
from tests.support.cli import runtime_cli
from tests.support.models import MLP_FP32, MLP_ONNX, backend_installed

HOSTILE = {
    "empty .npy": (lambda d: _empty(d / "x.npy"), "the file is empty"),
    "object array .npy": (lambda d: hostile_files.object_npy(d / "x.npy"), "holds Python objects"),
    "object array .npz": (lambda d: hostile_files.object_npz(d / "x.npz"), "holds Python objects"),
    "74.5 GiB header": (lambda d: hostile_files.huge_header_npy(d / "x.npy"), "(74.5 GiB), beyond the limit"),
    "truncated .npy": (lambda d: hostile_files.truncated_npy(d / "x.npy"), "the file is truncated"),
    "damaged header": (lambda d: hostile_files.damaged_header_npy(d / "x.npy"), "damaged .npy header"),
    "1 MB .npz of 1 GiB": (lambda d: hostile_files.zip_bomb_npz(d / "x.npz"), "expand to 1.0 GiB"),
    "a CSV named .npy": (lambda d: hostile_files.not_an_array(d / "x.npy"), "not a .npy or .npz file"),
    "an .npz without arrays": (lambda d: _empty_npz(d / "x.npz"), "holds no arrays"),
}


def _empty(path):
    path.write_bytes(b"")
    return path


def _empty_npz(path):
    np.savez(path)
    return path


def tiny_model():
    for model in (MLP_FP32, MLP_ONNX):
        if backend_installed(model):
            return model
    pytest.skip("no backend installed")


def assert_refused(done, fragment):
    assert done.returncode == 2, f"exit {done.returncode}\n{done.stderr}"
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and fragment in lines[0], done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("case", list(HOSTILE))
@pytest.mark.parametrize("command", ["run", "bench"])
def test_run_and_bench_refuse_hostile_input_files_in_one_line(tmp_path, case, command):
    make, fragment = HOSTILE[case]
    path = make(tmp_path)
    extra = ["--runs", "1", "--min-seconds", "0", "--warmup-seconds", "0"] if command == "bench" else []
    assert_refused(runtime_cli(command, tiny_model(), "--input", path, *extra, timeout=60), fragment)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_the_reader_checks_before_allocating(tmp_path, case):
    import resource

    make, fragment = HOSTILE[case]
    path = make(tmp_path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        read_array_file(path)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < MAX_ARRAY_BYTES / (1 << 20) / 4, f"peak RSS grew by {grown_mib:.0f} MiB"


def test_the_limit_can_be_raised_for_big_but_honest_files(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((64, 1024), np.float32))  # 256 KiB
    monkeypatch.setenv("EDGEML_MAX_ARRAY_BYTES", str(100_000))
    with pytest.raises(InputError, match="beyond the limit of 97.7 KiB"):
        read_array_file(tmp_path / "x.npy")
    monkeypatch.setenv("EDGEML_MAX_ARRAY_BYTES", str(1 << 20))
    assert read_array_file(tmp_path / "x.npy").shape == (64, 1024)


@pytest.mark.parametrize("case", ["object array .npz", "1 MB .npz of 1 GiB", "74.5 GiB header", "empty .npy"])
def test_calibration_data_is_read_the_same_way(tmp_path, case):
    from edgeml_converters.calibration import load_data
    from edgeml_converters.errors import CalibrationError
    from edgeml_converters.loading import TensorInfo

    make, fragment = HOSTILE[case]
    with pytest.raises(CalibrationError) as raised:
        load_data(make(tmp_path), [TensorInfo("x", (None, 8), "float32")], purpose="calibration")
    assert fragment in str(raised.value) and str(raised.value).startswith("cannot use calibration data")


# --- models that would need too much, or give NaN -----------------------------------------------------

def onnx_model(path, op: str, shape):
    onnx = pytest.importorskip("onnx")
    if not backend_installed(path):
        pytest.skip("onnxruntime is not installed")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("command", ["run", "bench"])
def test_a_model_whose_input_needs_74_gib_is_refused_before_allocating(tmp_path, command):
    model = onnx_model(tmp_path / "huge.onnx", "Relu", (1, 100_000, 100_000, 2))
    assert runtime_cli("info", model, check_exit=0).returncode == 0  # describing it costs nothing
    done = runtime_cli(command, model, timeout=60)
    assert_refused(done, "needs 74.5 GiB for 1 sample(s), beyond the limit of 512.0 MiB")


def test_run_json_never_prints_a_bare_nan(tmp_path):
    model = onnx_model(tmp_path / "sqrt.onnx", "Sqrt", (4,))
    np.save(tmp_path / "x.npy", np.array([4.0, -1.0, 9.0, -4.0], np.float32))
    done = runtime_cli("run", model, "--input", tmp_path / "x.npy", "--json", check_exit=0)

    def refuse(constant):
        raise AssertionError(f"bare {constant} in the JSON output")

    assert json.loads(done.stdout, parse_constant=refuse) == {"y": [2.0, None, 3.0, None]}
    assert "output 'y' has 2 NaN/infinite value(s), written as null" in done.stderr
