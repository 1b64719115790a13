"""Untrusted sources on the conversion side: a SavedModel's graph is inspected, not run, before anything
loads or traces it (file, Python and network ops refused unless --unsafe), and temporary folders left by a
killed conversion are removed by the next one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support.cli import command, edgeml

pytestmark = pytest.mark.slow

SAVE_MODELS = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf

root, target = sys.argv[1], sys.argv[2]
spec = [tf.TensorSpec((None, 4), tf.float32, name="x")]

class Writer(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.ones((4, 2)))
    @tf.function(input_signature=spec)
    def serve(self, x):
        tf.io.write_file(target, "written while converting")
        return {"y": tf.matmul(x, self.w)}

class PythonCode(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.ones((4, 2)))
    @tf.function(input_signature=spec)
    def serve(self, x):
        y = tf.py_function(lambda t: t * 2.0, [x], tf.float32)
        y.set_shape(x.shape)
        return {"y": tf.matmul(y, self.w)}

class Honest(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.ones((4, 2)))
    @tf.function(input_signature=spec)
    def serve(self, x):
        return {"y": tf.nn.relu(tf.matmul(x, self.w))}

for cls in (Writer, PythonCode, Honest):
    module = cls()
    tf.saved_model.save(module, os.path.join(root, cls.__name__.lower()),
                        signatures={"serving_default": module.serve.get_concrete_function()})
"""


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    target = root / "written-by-the-model.txt"
    subprocess.run([sys.executable, "-c", SAVE_MODELS, str(root), str(target)], check=True, capture_output=True,
                   timeout=300)
    target.unlink(missing_ok=True)  # tf.saved_model.save traces the function, which writes it once
    return root, target


def test_a_savedmodel_that_writes_a_file_is_refused_before_it_runs(saved_models, tmp_path):
    root, target = saved_models
    done = edgeml("convert", root / "writer", "--to", "tflite", "-o", tmp_path / "out", check_exit=2)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "WriteFile in serve/" in errors[0] and "--unsafe" in errors[0], done.stderr
    assert "nothing was run" in errors[0]
    assert not target.exists(), "the model's graph ran during edgeml convert"
    assert not (tmp_path / "out").exists()


def test_python_code_in_the_graph_is_refused(saved_models):
    from edgeml_converters import UnsafeModelError
    from edgeml_converters.loading import load_source

    root, _ = saved_models
    with pytest.raises(UnsafeModelError, match="EagerPyFunc .*runs Python code"):
        load_source(root / "pythoncode")


def test_honest_savedmodels_pass_and_unsafe_skips_the_check(saved_models):
    from edgeml_converters.loading import load_source, refuse_unsafe_graph

    root, target = saved_models
    refuse_unsafe_graph(root / "honest")  # its saver functions use SaveV2/RestoreV2: allowed off the serving path
    source = load_source(root / "writer", unsafe=True)  # the user vouched for it
    try:
        assert [info.name for info in source.inputs] == ["x"]
    finally:
        source.cleanup()
        target.unlink(missing_ok=True)


def test_checkpoint_ops_are_refused_on_the_serving_path_only():
    pytest.importorskip("tensorflow")
    from edgeml_converters.loading import unsafe_graph_ops
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    meta = saved_model.meta_graphs.add()
    graph = meta.graph_def
    graph.node.add(name="x", op="Placeholder")
    graph.node.add(name="call", op="StatefulPartitionedCall", input=["x"]).attr["f"].func.name = "serve_fn"
    graph.node.add(name="saver", op="StatefulPartitionedCall").attr["f"].func.name = "save_fn"
    graph.node.add(name="log", op="PrintV2").attr["output_stream"].s = b"file:///tmp/leak"
    meta.signature_def["serving_default"].outputs["y"].name = "call:0"
    serve_fn = graph.library.function.add()
    serve_fn.signature.name = "serve_fn"
    serve_fn.node_def.add(name="restore", op="RestoreV2")
    save_fn = graph.library.function.add()
    save_fn.signature.name = "save_fn"
    save_fn.node_def.add(name="save", op="SaveV2")
    found = {(op, where) for op, where, _ in unsafe_graph_ops(saved_model)}
    assert found == {("RestoreV2", "serve_fn/restore"), ("PrintV2", "log")}


def test_a_killed_conversion_leaves_folders_the_next_one_removes(tmp_path):
    """kill -9 of `edgeml convert` (parent and conversion process) while the conversion works: its scratch
    folder stays behind; the next conversion removes it, and leaves a live conversion's folder alone."""
    model = tmp_path / "model.keras"
    subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os; os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import keras
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.save({str(model)!r})
    """)], check=True, capture_output=True, timeout=300)
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch_root)}
    killed = subprocess.Popen(command("edgeml", "convert", model, "--to", "onnx", "-o", tmp_path / "out"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list(scratch_root.glob("edgeml-convert-*/edgeml-export-*")):
            assert killed.poll() is None and time.monotonic() < deadline, "the conversion never exported"
            time.sleep(0.05)
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    left = list(scratch_root.glob("edgeml-convert-*")) + list(tmp_path.glob(".out.staging-*"))
    assert len(left) == 2, left  # the conversion process's scratch folder and the staging folder
    for folder in left:  # older than a conversion's start-up, as a leftover found at the next run would be
        os.utime(folder / ".edgeml-owner", (time.time() - 60, time.time() - 60))
    alive = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                              "from edgeml_converters.output_dir import make_scratch_dir\n"
                              "print(make_scratch_dir('edgeml-export-'), flush=True)\ntime.sleep(120)"],
                             env=env, stdout=subprocess.PIPE, text=True)
    try:
        live_folder = alive.stdout.readline().strip()
        os.utime(os.path.join(live_folder, ".edgeml-owner"), (time.time() - 60, time.time() - 60))
        broken = tmp_path / "broken_saved_model"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"\x08\x01garbage, not a SavedModel protobuf")
        edgeml("convert", broken, "--to", "tflite", "-o", tmp_path / "out", env=env, check_exit=2)
        assert [folder for folder in left if folder.exists()] == []
        assert os.path.isdir(live_folder)  # its owner still runs
        assert sorted(path.name for path in scratch_root.iterdir()) == [os.path.basename(live_folder)]
    finally:
        alive.kill()
        alive.wait()
