"""Run by the onnx2tf tool environment's Python (TensorFlow 2.19, numpy 1.26), never imported by edgeml:

    TOOL_PYTHON -I onnx2tf_driver.py REQUEST.json

REQUEST: {"onnx": path, "saved_model": dir to write, "keep_layout": bool, "result": path of the JSON answer}.
onnx2tf builds a Keras model from the ONNX graph (nothing saved: it would also convert to .tflite itself, which
edgeml does with its own converter), and this script saves it as a SavedModel whose signature names its inputs
and outputs as the ONNX graph does, and writes RESULT: each tensor's ONNX name, signature name and layout
permutation, the tools' versions, and how far the SavedModel is from ONNX Runtime on one random sample. When
onnx2tf fails, RESULT names the operator (and node) it was converting.

Standard library, numpy, onnx, onnxruntime, tensorflow and onnx2tf only: edgeml is not installed here.
"""

from __future__ import annotations

import json
import re
import sys
import traceback

SIGNATURE_KEY = "serving_default"
# A SavedModel signature name must match this (TensorFlow's op-name rule).
VALID_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")
CHANNEL_LAST = {3: (0, 2, 1), 4: (0, 2, 3, 1), 5: (0, 2, 3, 4, 1)}


def main(request_path: str) -> int:
    with open(request_path) as handle:
        request = json.load(handle)
    try:
        result = convert(request)
    except (Exception, SystemExit) as error:  # noqa: BLE001 - onnx2tf also sys.exit()s; edgeml gets one line
        result = {"error": describe_failure(error)}
    with open(request["result"], "w") as handle:
        json.dump(result, handle, indent=2)
    return 0


def convert(request: dict) -> dict:
    import onnx

    onnx_model = onnx.load(request["onnx"], load_external_data=False)  # only names and shapes are read here
    onnx_inputs, onnx_outputs = graph_tensors(onnx_model)
    keras_model = run_onnx2tf(request["onnx"], [t["name"] for t in onnx_inputs] if request["keep_layout"] else [])
    inputs = match_inputs(onnx_inputs, keras_model, request["keep_layout"])
    outputs = match_outputs(onnx_outputs, keras_model)
    save_signature(keras_model, inputs, outputs, request["saved_model"])
    return {
        "signature_key": SIGNATURE_KEY,
        "inputs": inputs,
        "outputs": outputs,
        "check": compare_with_onnxruntime(request["onnx"], keras_model, inputs, outputs),
        "versions": versions(),
    }


def graph_tensors(model):
    """(inputs, outputs) of the ONNX graph as [{"name", "shape" (None for symbolic), "dtype"}]."""
    from onnx import helper

    initializers = {tensor.name for tensor in model.graph.initializer}

    def describe(value_info):
        tensor_type = value_info.type.tensor_type
        shape = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        return {"name": value_info.name, "shape": shape, "dtype": dtype}

    inputs = [describe(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [describe(v) for v in model.graph.output]


def run_onnx2tf(onnx_path: str, keep_names):
    import numpy as np
    import onnx2tf
    import onnx2tf.onnx2tf as core

    # onnx2tf downloads sample RGB images to check 3-channel image models; edgeml never reaches the network at
    # run time, and any values serve that check (edgeml validates the result on the user's data afterwards).
    core.download_test_image_data = lambda: np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
    return onnx2tf.convert(
        input_onnx_file_path=onnx_path,
        output_folder_path="onnx2tf_output",  # unused (nothing is saved), relative to the private work dir
        non_verbose=True,
        disable_model_save=True,  # the Keras model is returned; edgeml saves it and converts it itself
        keep_ncw_or_nchw_or_ncdhw_input_names=list(keep_names) or None,
    )


def signature_name(name: str, taken: set) -> str:
    """`name` itself when TensorFlow accepts it as a signature name, else a cleaned unique one."""
    candidate = name if VALID_NAME.match(name) else re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("_.-") or "tensor"
    if not VALID_NAME.match(candidate):
        candidate = f"t_{candidate}"
    unique, count = candidate, 1
    while unique in taken:
        count += 1
        unique = f"{candidate}_{count}"
    taken.add(unique)
    return unique


def layout_perm(onnx_shape, tf_shape, channel_last: bool):
    """The permutation p with tf_array = onnx_array.transpose(p), or None when the layouts are the same: the one
    onnx2tf is expected to have made first (channel-last or none), else the other one the shapes allow (None dims
    match anything). The numbers are checked afterwards (compare_with_onnxruntime)."""
    last = CHANNEL_LAST.get(len(onnx_shape))
    candidates = [last, None] if channel_last else [None, last]
    for perm in candidates:
        expected = [onnx_shape[axis] for axis in perm] if perm else list(onnx_shape)
        if len(expected) == len(tf_shape) and all(a is None or b is None or a == b for a, b in zip(expected, tf_shape)):
            return list(perm) if perm else None
    raise RuntimeError(f"onnx2tf made shape {list(tf_shape)} from ONNX shape {list(onnx_shape)}: edgeml cannot tell "
                       "how its layout maps to the ONNX one")


def match_inputs(onnx_inputs, keras_model, keep_layout: bool):
    """onnx2tf names the model's inputs as ONNX does (":" replaced) and turns 3-5-D inputs channel-last unless
    kept (-k); matched by name, else by position."""
    positions = {tensor.name.split(":")[0]: index for index, tensor in enumerate(keras_model.inputs)}
    if len(keras_model.inputs) != len(onnx_inputs):
        raise RuntimeError(f"onnx2tf made {len(keras_model.inputs)} inputs from {len(onnx_inputs)} ONNX inputs")
    taken, matched = set(), []
    for position, spec in enumerate(onnx_inputs):
        index = positions.get(spec["name"].replace(":", "__"), position)
        tensor = keras_model.inputs[index]
        tf_shape = list(tensor.shape)
        perm = layout_perm(spec["shape"], tf_shape, channel_last=not keep_layout and len(spec["shape"]) in CHANNEL_LAST)
        matched.append({**spec, "signature": signature_name(spec["name"], taken), "tf_shape": tf_shape,
                        "tf_dtype": tensor.dtype.name, "perm": perm, "keras_index": index})
    return matched


def match_outputs(onnx_outputs, keras_model):
    """Outputs come in ONNX order; onnx2tf records which it left channel-last (`onnx_output_layouts`)."""
    layouts = getattr(keras_model, "onnx_output_layouts", None) or {}
    if len(keras_model.outputs) != len(onnx_outputs):
        raise RuntimeError(f"onnx2tf made {len(keras_model.outputs)} outputs from {len(onnx_outputs)} ONNX outputs")
    taken, matched = set(), []
    for spec, tensor in zip(onnx_outputs, keras_model.outputs):
        tf_shape = list(tensor.shape)
        flag = layouts.get(spec["name"], layouts.get(spec["name"].replace(":", "__")))
        channel_last = bool(flag) and len(spec["shape"]) in CHANNEL_LAST
        if not spec["shape"] and tf_shape:  # ONNX graph without output shapes: take onnx2tf's word
            spec = {**spec, "shape": [tf_shape[i] for i in _inverse(CHANNEL_LAST[len(tf_shape)])]
                    if channel_last else tf_shape}
        perm = layout_perm(spec["shape"], tf_shape, channel_last=channel_last)
        matched.append({**spec, "signature": signature_name(spec["name"], taken), "tf_shape": tf_shape,
                        "tf_dtype": tensor.dtype.name, "perm": perm})
    return matched


def _inverse(perm):
    inverse = [0] * len(perm)
    for position, axis in enumerate(perm):
        inverse[axis] = position
    return inverse


def save_signature(keras_model, inputs, outputs, directory: str) -> None:
    """A SavedModel with one signature whose inputs and outputs carry the ONNX names (signature-safe)."""
    import tensorflow as tf

    ordered = sorted(inputs, key=lambda spec: spec["keras_index"])
    specs = [tf.TensorSpec(spec["tf_shape"], spec["tf_dtype"], name=spec["signature"]) for spec in ordered]

    @tf.function(input_signature=specs)
    def serve(*tensors):
        results = keras_model(list(tensors), training=False)
        results = results if isinstance(results, (list, tuple)) else [results]
        return {spec["signature"]: tf.identity(value) for spec, value in zip(outputs, results)}

    module = tf.Module()
    module.keras_model = keras_model  # tracked, so that its variables are saved
    module.serve = serve
    tf.saved_model.save(module, directory, signatures={SIGNATURE_KEY: serve.get_concrete_function()})


def compare_with_onnxruntime(onnx_path: str, keras_model, inputs, outputs):
    """Largest |ONNX Runtime - SavedModel's Keras model| over the outputs on one random sample (batch 1), with
    the layouts mapped (a wrong permutation shows here), and the largest |ONNX Runtime output| for scale.
    None when ONNX Runtime cannot run the graph."""
    import numpy as np
    import onnxruntime

    rng = np.random.default_rng(0)
    feeds = {}
    for spec in inputs:
        shape = [1 if dim is None else dim for dim in spec["shape"]]
        kind = np.dtype(spec["dtype"])
        feeds[spec["name"]] = (rng.random(shape).astype(kind) if kind.kind == "f" else np.zeros(shape, kind))
    try:
        session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        expected = session.run([spec["name"] for spec in outputs], feeds)
    except Exception:  # noqa: BLE001 - a graph ONNX Runtime cannot run (custom ops) is still converted
        return None
    ordered = sorted(inputs, key=lambda spec: spec["keras_index"])
    tf_feeds = [feeds[spec["name"]].transpose(spec["perm"]) if spec["perm"] else feeds[spec["name"]]
                for spec in ordered]
    got = keras_model(tf_feeds, training=False)
    got = got if isinstance(got, (list, tuple)) else [got]
    worst, scale = 0.0, 0.0
    for spec, reference, value in zip(outputs, expected, got):
        reference = np.asarray(reference.transpose(spec["perm"]) if spec["perm"] else reference, dtype=np.float64)
        if reference.size:
            worst = max(worst, float(np.max(np.abs(np.asarray(value, dtype=np.float64) - reference))))
            scale = max(scale, float(np.max(np.abs(reference))))
    return {"max_abs_diff": worst, "max_abs_reference": scale}


def describe_failure(error: BaseException) -> dict:
    """The operator onnx2tf was converting when it failed (from its own loop's frame), and a short reason."""
    node = failing_node(error)
    message = f"{type(error).__name__}: {error}".strip()
    if isinstance(error, ModuleNotFoundError) and str(error.name or "").startswith("onnx2tf.ops."):
        message = "onnx2tf has no converter for it"
    if isinstance(error, SystemExit):
        message = "onnx2tf stopped (see its log)"
    return {"op": node[0] if node else None, "node": node[1] if node else None, "domain": node[2] if node else None,
            "message": message[:500], "traceback": traceback.format_exc()[-4000:]}


def failing_node(error: BaseException):
    """(op type, node name, domain) of the `graph_node` onnx2tf's convert() was on, from the traceback."""
    found = None
    frame = error.__traceback__
    while frame is not None:
        node = frame.tb_frame.f_locals.get("graph_node")
        if node is not None and hasattr(node, "op"):
            found = (str(node.op), str(getattr(node, "name", "") or ""), str(getattr(node, "domain", "") or ""))
        frame = frame.tb_next
    return found


def versions() -> dict:
    from importlib.metadata import version

    return {name: version(name) for name in ("onnx2tf", "tensorflow", "onnx", "onnxruntime", "numpy")}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
