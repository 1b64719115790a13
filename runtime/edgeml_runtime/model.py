"""`load()` and `Model`: one loaded model, safe to call from several threads."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from threading import get_ident
from typing import Any, Dict, List, Optional, Union

import numpy as np

from edgeml_runtime.backends import model_format, open_session
from edgeml_runtime.errors import ModelLoadError
from edgeml_runtime.fast_run import FastRun
from edgeml_runtime.feeds import prepare_feeds
from edgeml_runtime.quantization import dequantize
from edgeml_runtime.specs import TensorSpec

__all__ = ["Model", "load", "read_model_file"]


def load(
    path: Union[str, os.PathLike], *, backend: Optional[str] = None, threads: Optional[int] = None
) -> Model:
    """Load a .tflite, .onnx or .ort model.

    `backend` picks one explicitly (litert, tflite_runtime, onnxruntime); `threads` sets the intra-op
    thread count, by default every core (both backends' own defaults differ, so edgeml states it).
    """
    path = Path(path)
    threads = threads or os.cpu_count() or 1
    started = time.perf_counter()
    model_bytes = read_model_file(path)
    fmt = model_format(path, model_bytes[:8])
    session = open_session(model_bytes, fmt, backend, threads, model_path=path)
    init_ms = (time.perf_counter() - started) * 1000.0
    return Model(path, model_bytes, fmt, session, backend=backend, threads=threads, init_ms=init_ms)


def read_model_file(path: Path) -> bytes:
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a directory; pass the .tflite/.onnx file inside it")
    data = path.read_bytes()
    if len(data) < 8:
        raise ModelLoadError(f"{path}: only {len(data)} bytes, not a model; the file is empty or truncated")
    return data


class Model:
    """A loaded model. `run()` checks feeds, (de)quantizes, and may be called from several threads.

    TFLite interpreters are not thread-safe, so each calling thread gets its own interpreter made from
    the same bytes (faster than one interpreter behind a lock: see benchmarks/thread_safety.py).
    ONNX Runtime sessions are thread-safe and shared.
    """

    def __init__(self, path: Path, model_bytes: bytes, fmt: str, session, *, backend, threads, init_ms):
        self.path = path
        self.format = fmt
        self.model_bytes = len(model_bytes)
        self.threads = threads
        self.init_ms = init_ms
        self._bytes = model_bytes
        self._requested_backend = backend
        self._first_session = session
        self._owner = get_ident()
        self._local = threading.local()
        self._sessions_lock = threading.Lock()
        self._quantized_outputs = any(spec.quantization is not None for spec in session.outputs)
        self._first_fast = FastRun.for_session(session)
        self._shared = session.concurrent  # one session for every thread

    @property
    def backend(self) -> str:
        return self._first_session.name

    @property
    def backend_version(self) -> str:
        return self._first_session.version

    @property
    def inputs(self) -> List[TensorSpec]:
        return list(self._first_session.inputs)

    @property
    def outputs(self) -> List[TensorSpec]:
        return list(self._first_session.outputs)

    @property
    def quantization(self) -> Optional[str]:
        """'int8'/'uint8'/'int16' when the model's inputs are integer-quantized, else None."""
        for spec in self.inputs:
            if spec.quantization is not None:
                return spec.dtype
        return None

    def graph(self) -> Dict[str, Any]:
        """What the backend can tell of the graph: `ops` (operator name -> count) and `parameters`
        (values held in constant tensors); None where the backend does not expose them."""
        describe = getattr(self._first_session, "graph", None)
        return describe() if describe else {"ops": None, "parameters": None}

    def run(self, feeds: Any, *, raw: bool = False, allow_nonfinite: bool = False) -> Dict[str, np.ndarray]:
        """Run one inference. Returns outputs by name; quantized outputs are dequantized unless raw=True.
        Every returned array is the caller's: later calls never change it."""
        if self._shared or get_ident() == self._owner:  # _thread_state(), inlined: µs count on tiny models
            session, fast = self._first_session, self._first_fast
        else:
            session, fast = self._thread_state()
        if fast is not None and type(feeds) is np.ndarray:
            outputs = fast.run(feeds, raw, allow_nonfinite)
            if outputs is not None:
                return outputs
        prepared = prepare_feeds(feeds, session.inputs, raw=raw, allow_nonfinite=allow_nonfinite)
        outputs = session.run(prepared)
        if raw or not self._quantized_outputs:
            return outputs
        return {spec.name: _real_values(outputs[spec.name], spec) for spec in session.outputs}

    def _thread_state(self):
        """This thread's session and its FastRun (None for models it does not serve: see fast_run)."""
        if self._shared or get_ident() == self._owner:
            return self._first_session, self._first_fast
        state = getattr(self._local, "state", None)
        if state is None:
            from edgeml_runtime.backends import open_session

            with self._sessions_lock:  # creating interpreters concurrently gains nothing and uses memory
                session = open_session(self._bytes, self.format, self._first_session.name, self.threads,
                                       model_path=self.path)
            # The FastRun's buffers belong to this thread's interpreter: never shared between threads.
            self._local.state = state = (session, FastRun.for_session(session))
        return state

    def __repr__(self) -> str:
        return f"<edgeml_runtime.Model {self.path.name} {self.format} via {self.backend} {self.backend_version}>"


def _real_values(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if spec.quantization is None:
        return array
    return dequantize(array, spec.quantization)
