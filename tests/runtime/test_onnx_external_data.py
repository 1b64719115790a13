"""ONNX models whose weights live in files beside them (external data): resolved against the model's own
folder, never the current directory, and refused when a reference leaves that folder or claims more
bytes than its tensor holds.

The models are built with the `onnx` package (skipped where only the runtime is installed); running them
needs only ONNX Runtime.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from edgeml_runtime import ModelLoadError, load
from edgeml_runtime.backends.onnx_external import external_tensors

from tests.support.cli import runtime_cli
from tests.support.marks import require_backend_for

onnx = pytest.importorskip("onnx")
require_backend_for("x.onnx")

SECRET = b"SECRET-notes-1234"  # 17 bytes
SIZE = 16


def external_model(location: str, *, size: int = SIZE, offset=None, length=None, in_subgraph: bool = False) -> bytes:
    """y = x + w, uint8[size], where w's bytes are external data at `location`. With `in_subgraph`, w is a
    Constant inside an If node's branch (a tensor in a node attribute, inside a nested graph)."""
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[size], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            entry = weight.external_data.add()
            entry.key, entry.value = key, str(value)
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [size])
    y = helper.make_tensor_value_info("y", TensorProto.UINT8, [size])
    if not in_subgraph:
        graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], initializer=[weight])
    else:
        w_out = helper.make_tensor_value_info("w_out", TensorProto.UINT8, [size])
        branch = helper.make_graph([helper.make_node("Constant", [], ["w_out"], value=weight)], "b", [], [w_out])
        nodes = [
            helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True])),
            helper.make_node("If", ["cond"], ["w"], then_branch=branch, else_branch=branch),
            helper.make_node("Add", ["x", "w"], ["y"]),
        ]
        graph = helper.make_graph(nodes, "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """The current directory: another folder, holding a notes.txt a crafted model would like to read."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "notes.txt").write_bytes(SECRET)
    monkeypatch.chdir(folder)
    return folder


def write_model(folder, data: bytes, name: str = "model.onnx"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def test_a_model_cannot_read_a_file_of_the_current_directory(tmp_path, elsewhere):
    model = write_model(tmp_path / "models", external_model("notes.txt"))
    with pytest.raises(ModelLoadError, match="notes.txt"):
        load(model)


def test_weights_beside_the_model_load_from_any_directory(tmp_path, elsewhere):
    folder = tmp_path / "models"
    model = write_model(folder, external_model("weights.bin"))
    (folder / "weights.bin").write_bytes(bytes(range(1, SIZE + 1)))
    outputs = load(model).run(np.zeros(SIZE, np.uint8))
    assert outputs["y"].tolist() == list(range(1, SIZE + 1))
    # ... also through a link to the model (a deployment's `current`), and with an offset and a length
    (tmp_path / "link.onnx").symlink_to(model)
    (folder / "packed.bin").write_bytes(b"\xff" * 5 + bytes(SIZE) + b"\xff")
    packed = write_model(folder, external_model("packed.bin", offset=5, length=SIZE), "packed.onnx")
    assert load(tmp_path / "link.onnx").run(np.zeros(SIZE, np.uint8))["y"].tolist() == list(range(1, SIZE + 1))
    assert load(packed).run(np.zeros(SIZE, np.uint8))["y"].tolist() == [0] * SIZE


@pytest.mark.parametrize("location, message", [
    ("../elsewhere/notes.txt", "outside the model's folder"),
    ("{elsewhere}/notes.txt", "outside the model's folder"),
    ("sub/../../elsewhere/notes.txt", "outside the model's folder"),
    ("..\\elsewhere\\notes.txt", "outside the model's folder"),
    ("link.bin", "links outside the model's folder"),
    ("missing.bin", "not a file"),
    ("", "without a 'location'"),
])
def test_references_leaving_the_folder_are_refused(tmp_path, elsewhere, location, message):
    folder = tmp_path / "models"
    model = write_model(folder, external_model(location.format(elsewhere=elsewhere)))
    (folder / "link.bin").symlink_to(elsewhere / "notes.txt")
    with pytest.raises(ModelLoadError, match=message):
        load(model)


def test_a_reference_inside_a_nested_graph_is_checked_too(tmp_path, elsewhere):
    model = write_model(tmp_path / "models", external_model("../elsewhere/notes.txt", in_subgraph=True))
    assert [tensor.name for tensor in external_tensors(model.read_bytes())] == ["w", "w"]  # both branches
    with pytest.raises(ModelLoadError, match="outside the model's folder"):
        load(model)


@pytest.mark.parametrize("options, message", [
    ({"length": 1 << 30}, "holds 16 bytes"),                     # reads more than its tensor
    ({"offset": 10}, "has only 16 bytes"),                      # runs past the end of the file
    ({"size": 1 << 40}, "has only 16 bytes"),                   # a shape far larger than the file
    ({"offset": "-1"}, "not a whole number"),
])
def test_the_bytes_read_are_capped_to_the_declared_tensor(tmp_path, elsewhere, options, message):
    folder = tmp_path / "models"
    model = write_model(folder, external_model("weights.bin", **options))
    (folder / "weights.bin").write_bytes(bytes(SIZE))
    with pytest.raises(ModelLoadError, match=message):
        load(model)


def test_the_command_line_refuses_it_in_one_line_without_the_file_content(tmp_path, elsewhere):
    model = write_model(tmp_path / "models", external_model("notes.txt"))
    done = runtime_cli("run", model, "--json", cwd=elsewhere, check_exit=2)
    assert SECRET.decode() not in done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr


def test_a_damaged_protobuf_is_a_load_error(tmp_path):
    data = bytearray(external_model("weights.bin"))
    model = write_model(tmp_path, bytes(data[: data.index(b"location") + 4]))
    with pytest.raises(ModelLoadError):
        load(model)
    assert os.path.exists(model)
