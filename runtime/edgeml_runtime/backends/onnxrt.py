"""ONNX (.onnx) and ONNX Runtime Mobile (.ort) models through onnxruntime."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from edgeml_runtime.errors import ModelLoadError, ModelRunError
from edgeml_runtime.errors import first_line as _first_line
from edgeml_runtime.formats import Backend
from edgeml_runtime.specs import TensorSpec

__all__ = ["OnnxRuntimeSession", "import_backend", "open", "unavailable_reason"]

ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(uint16)": "uint16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def unavailable_reason(backend: Backend) -> Optional[str]:
    if importlib.util.find_spec(backend.module) is None:
        return f"{backend.distribution} is not installed"
    return None


def import_backend(backend: Backend):
    return importlib.import_module(backend.module)


def open(model_bytes: bytes, backend: Backend, threads: Optional[int], *,  # noqa: A001
         model_path: Optional[Path] = None) -> OnnxRuntimeSession:
    return OnnxRuntimeSession(model_bytes, threads, model_path=model_path)


class OnnxRuntimeSession:
    """An InferenceSession; its run() is thread-safe, so one session serves every thread."""

    concurrent = True
    format = "onnx"
    name = "onnxruntime"

    def __init__(self, model_bytes: bytes, threads: Optional[int], *, model_path: Optional[Path] = None,
                 profile_prefix: Optional[str] = None):
        """`profile_prefix`: record ONNX Runtime's profile (every node's time, every run) to a JSON file named
        from this path prefix, returned by end_profiling() (edgeml_runtime.profiling)."""
        import onnxruntime

        model = _model_to_open(model_bytes, model_path)
        self.version = onnxruntime.__version__
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4  # fatal only: edgeml raises its own error, ORT would log it again
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            # On a load error onnxruntime print()s an "EP Error" banner to stdout and retries; keep
            # stdout clean for --json output (the error itself is raised and reported below).
            with contextlib.redirect_stdout(io.StringIO()):
                self._session = onnxruntime.InferenceSession(
                    model, sess_options=options, providers=["CPUExecutionProvider"]
                )
        except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            raise ModelLoadError(f"ONNX Runtime cannot load the model: {_first_line(error)}") from None
        self.inputs = [_spec(node) for node in self._session.get_inputs()]
        self.outputs = [_spec(node) for node in self._session.get_outputs()]
        self._output_names = [spec.name for spec in self.outputs]
        self._input_name = self.inputs[0].name if self.inputs else None
        # InferenceSession.run re-checks feed names and OrtValue ownership in Python, and builds default
        # RunOptions when given none: ~4 µs per call, a third of a tiny model's run. prepare_feeds has
        # already checked every feed, so call the session's own binding with one reused RunOptions.
        self._run_options = onnxruntime.RunOptions()
        self._run = getattr(self._session, "_sess", self._session).run

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        try:
            values = self._run(self._output_names, feeds, self._run_options)
        except Exception as error:  # onnxruntime's own exception types (Fail, InvalidArgument, ...)
            raise ModelRunError(_run_failure(error)) from None
        return dict(zip(self._output_names, values))

    def end_profiling(self) -> str:
        """Stop recording the profile (see __init__) and return its JSON file's path."""
        return self._session.end_profiling()

    def run_single(self, array: np.ndarray) -> List[np.ndarray]:
        """run() for a one-input model, its array already checked: the outputs in order."""
        try:
            return self._run(self._output_names, {self._input_name: array}, self._run_options)
        except Exception as error:  # onnxruntime's own exception types (Fail, InvalidArgument, ...)
            raise ModelRunError(_run_failure(error)) from None


def _model_to_open(model_bytes: bytes, model_path: Optional[Path]):
    """What to give InferenceSession: the bytes, or, for a model with external data (weights in files
    beside it), its file once every reference is checked to stay inside its folder (onnx_external): loaded
    from bytes, ONNX Runtime would resolve them against the current directory."""
    from edgeml_runtime.backends import onnx_external

    if model_bytes[4:8] == b"ORTM" or not onnx_external.may_have_external_data(model_bytes):
        return model_bytes  # .ort files have no external data; nor has a model without the word 'location'
    if model_path is None:
        if onnx_external.external_tensors(model_bytes):
            raise ModelLoadError("the model keeps weights in external files, and was given without its path; "
                                 "load it from its file (edgeml_runtime.load(path))")
        return model_bytes
    real = Path(os.path.realpath(model_path))
    try:
        if not onnx_external.check_external_data(model_bytes, real.parent):
            return model_bytes
    except ModelLoadError as error:
        raise ModelLoadError(f"{Path(model_path).name}: {error}") from None
    return str(real)  # ONNX Runtime resolves each (checked) location against this file's folder


# "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running Reshape node. Name:'r'
# Status Message: /onnxruntime_src/...h:84 ...Helper(...) size != 0 && ... was false. The input tensor ..."
_NODE_FAILURE = re.compile(
    r"running (?P<op>\S+) node\. Name:'(?P<node>[^']*)' Status Message: (?:\S+:\d+ .*? was false\. )?(?P<reason>.+)"
)


def _run_failure(error: Exception) -> str:
    """One line naming the failing operator and ONNX Runtime's reason, without its C++ source location."""
    match = _NODE_FAILURE.search(str(error).strip().split("\n")[0])
    if not match:
        return f"ONNX Runtime failed to run the model: {_first_line(error)}"
    where = f"{match['op']} node '{match['node']}'" if match["node"] else f"{match['op']} node"
    return (f"ONNX Runtime failed to run the model at the {where}: {match['reason'][:300]}; "
            "check the input's shape and values against the model's inputs")


def _spec(node) -> TensorSpec:
    if node.type not in ONNX_TYPES:
        raise ModelLoadError(f"input/output '{node.name}' has type {node.type}, which edgeml_runtime does not feed")
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else None for dim in node.shape)
    # Quantized ONNX models (QDQ) keep float inputs and outputs, so there is nothing to (de)quantize here.
    return TensorSpec(name=node.name, shape=shape, dtype=ONNX_TYPES[node.type], quantization=None)
