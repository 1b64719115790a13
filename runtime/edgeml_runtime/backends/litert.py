"""TFLite models through LiteRT (`ai_edge_litert`) or the legacy `tflite_runtime`. Never tensorflow.lite."""

from __future__ import annotations

import importlib
import importlib.util
from math import isfinite
from typing import Dict, List, Optional

import numpy as np

from edgeml_runtime.errors import ModelLoadError, ModelRunError
from edgeml_runtime.errors import first_line as _first_line
from edgeml_runtime.formats import Backend
from edgeml_runtime.specs import Quantization, TensorSpec

__all__ = ["LiteRTSession", "import_backend", "open", "tflite_runtime_numpy_problem", "unavailable_reason"]


def unavailable_reason(backend: Backend) -> Optional[str]:
    """Why `backend` cannot be used here, or None when it can."""
    if importlib.util.find_spec(backend.module) is None:
        return f"{backend.distribution} is not installed"
    if backend.name == "tflite_runtime":
        return tflite_runtime_numpy_problem(_installed_version(backend), np.__version__)
    return None


def tflite_runtime_numpy_problem(tflite_version: str, numpy_version: str) -> Optional[str]:
    """tflite_runtime (last release 2.14) is compiled against numpy 1.x and crashes under numpy 2."""
    tflite_major_minor = tuple(int(part) for part in tflite_version.split(".")[:2] if part.isdigit())
    numpy_major = int(numpy_version.split(".")[0])
    if numpy_major >= 2 and tflite_major_minor <= (2, 14):
        return (
            f"tflite-runtime {tflite_version} was built for numpy 1.x and crashes with numpy {numpy_version} "
            "(use ai-edge-litert, or pip install 'numpy<2')"
        )
    return None


def _installed_version(backend: Backend) -> str:
    """Version without importing the package (tflite_runtime must not be imported under numpy 2)."""
    from importlib import metadata  # only on this rare path: importing metadata costs ~20 ms

    try:
        return metadata.version(backend.distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def import_backend(backend: Backend):
    """The backend's interpreter module (what a session uses)."""
    return importlib.import_module(backend.module + ".interpreter")


def open(model_bytes: bytes, backend: Backend, threads: Optional[int], *,  # noqa: A001
         model_path=None) -> LiteRTSession:
    return LiteRTSession(model_bytes, backend, threads)  # a .tflite is self-contained: model_path is not needed


class LiteRTSession:
    """One TFLite interpreter. Interpreters are not thread-safe: the Model gives each thread its own."""

    concurrent = False
    format = "tflite"

    def __init__(self, model_bytes: bytes, backend: Backend, threads: Optional[int]):
        interpreter_module = import_backend(backend)
        self.name = backend.name
        self._backend = backend
        self._model_bytes = model_bytes  # a reference, not a copy: the Model holds the same bytes
        self._threads = threads
        self.version = str(getattr(importlib.import_module(backend.module), "__version__", "unknown"))
        try:
            # model_content: the model is read from bytes, which the interpreter verifies.
            self._interpreter = interpreter_module.Interpreter(model_content=model_bytes, num_threads=threads)
            _allocate(self._interpreter)
            self._input_details = self._interpreter.get_input_details()
            self._output_details = self._interpreter.get_output_details()
            input_names, output_names = self._signature_names()
        except (ValueError, RuntimeError, KeyError) as error:  # UnicodeDecodeError is a ValueError
            raise ModelLoadError(f"LiteRT cannot load the model: {_first_line(error)}") from None
        self.inputs = [_spec(d, input_names.get(d["index"], d["name"])) for d in self._input_details]
        self.outputs = [_spec(d, output_names.get(d["index"], d["name"])) for d in self._output_details]
        # Shapes the interpreter is currently planned for; tracked here because reading them back
        # through get_tensor() would copy the tensor on every call.
        self._planned_shapes = [tuple(d["shape"]) for d in self._input_details]
        self._input_plan = [(d["index"], spec.name) for d, spec in zip(self._input_details, self.inputs)]
        self._output_plan = [(d["index"], spec.name) for d, spec in zip(self._output_details, self.outputs)]
        self._output_indices = [d["index"] for d in self._output_details]
        self._first_input_index = self._input_plan[0][0] if self._input_plan else None
        self._direct = backend.name == "litert" and _has_wrapper(self._interpreter)
        self._checks_input = False  # True on a float-I/O twin (see float_io_twin)

    def _signature_names(self):
        """Readable names from the model's single signature (e.g. 'pixels' instead of 'serving_default_pixels:0')."""
        signatures = self._interpreter.get_signature_list()
        if len(signatures) != 1:
            return {}, {}
        runner = self._interpreter.get_signature_runner(next(iter(signatures)))
        inputs = {details["index"]: name for name, details in runner.get_input_details().items()}
        outputs = {details["index"]: name for name, details in runner.get_output_details().items()}
        return inputs, outputs

    def graph(self) -> dict:
        """Operators and parameter count; constants are operator inputs that no operator produces."""
        # A fresh interpreter that is never allocated: allocation applies the XNNPACK delegate, which would
        # replace the model's operators by one DELEGATE node. _get_ops_details is the only way to list ops
        # without the flatbuffer schema.
        interpreter = import_backend(self._backend).Interpreter(model_content=self._model_bytes)
        ops = interpreter._get_ops_details()
        produced = {index for op in ops for index in op["outputs"]}
        graph_inputs = {detail["index"] for detail in interpreter.get_input_details()}
        constants = {index for op in ops for index in op["inputs"] if index >= 0} - produced - graph_inputs
        shapes = {detail["index"]: detail["shape"] for detail in interpreter.get_tensor_details()}
        counts: Dict[str, int] = {}
        for op in ops:
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
        parameters = int(sum(int(np.prod(shapes[index])) for index in constants if index in shapes))
        return {"ops": counts, "parameters": parameters}

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        interpreter = self._interpreter
        try:
            resized = False
            for position, (index, name) in enumerate(self._input_plan):
                resized |= self._plan_shape(position, index, feeds[name].shape)
            if resized:
                interpreter.allocate_tensors()
            for index, name in self._input_plan:
                interpreter.set_tensor(index, feeds[name])
            interpreter.invoke()
            return {name: interpreter.get_tensor(index) for index, name in self._output_plan}
        except (RuntimeError, ValueError) as error:
            raise _run_error(error) from None

    def run_single(self, array: np.ndarray) -> Optional[List[np.ndarray]]:
        """run() for a one-input model, its array already checked: the outputs in order, each a copy. On a
        float-I/O twin (float_io_twin), None when the input held NaN or an infinity.

        With ai_edge_litert this calls the interpreter's C++ wrapper (SetTensor, Invoke, GetTensor) itself:
        the Python methods around them only add frames and invoke()'s check for numpy views of the
        interpreter's buffers, which this runtime never takes (it never calls tensor()). The wrapper is
        looked up on every call, never kept: a kept reference would fail that same check in run()."""
        interpreter, index = self._interpreter, self._first_input_index
        try:
            if array.shape != self._planned_shapes[0] and self._plan_shape(0, index, array.shape):
                interpreter.allocate_tensors()
            if not self._direct:
                interpreter.set_tensor(index, array)
                interpreter.invoke()
                return [interpreter.get_tensor(output) for output in self._output_indices]
            wrapper = interpreter._interpreter
            wrapper.SetTensor(index, array)
            wrapper.Invoke()
            first = wrapper.GetTensor(self._output_indices[0], 0)
            if self._checks_input and first.size and not isfinite(first.item(0)):
                return None  # a float-I/O twin's input held NaN or an infinity
            if len(self._output_indices) == 1:  # no comprehension: its frame costs a tiny model's run ~0.3 µs
                return [first]
            return [first] + [wrapper.GetTensor(output, 0) for output in self._output_indices[1:]]
        except (RuntimeError, ValueError) as error:
            raise _run_error(error) from None

    def float_io_twin(self) -> Optional[LiteRTSession]:
        """A session on this model's float-I/O twin (backends/float_io.py): it takes the real values an app
        feeds, returns real values, and its run_single returns None for an input holding NaN or an infinity.
        None where there is none (tflite_runtime, a large or stateful model, ...), or where the twin does not
        give exactly what quantizing with `edgeml_runtime.quantization`, running this model and dequantizing
        gives on a probe, or does not catch NaN and infinities."""
        from edgeml_runtime.backends import float_io  # made in loops only: not imported at start-up

        if not self._direct or len(self._model_bytes) > float_io.MAX_MODEL_BYTES:
            return None
        twin_bytes = float_io.float_io_model(self._model_bytes)  # each thread's session makes its own: nothing kept
        if twin_bytes is None:
            return None
        try:
            twin = LiteRTSession(twin_bytes, self._backend, self._threads)
        except ModelLoadError:
            return None
        twin._checks_input = True  # its first output's first value is NaN for an input holding NaN or infinity
        try:
            return twin if float_io.agrees(self, twin) else None
        except ModelRunError:
            return None

    def _plan_shape(self, position: int, index: int, shape) -> bool:
        """Resize input `position` for `shape` when the interpreter is planned for another (a dynamic
        dimension, usually the batch); True when it did, and allocate_tensors() must then re-plan memory."""
        if shape == self._planned_shapes[position]:
            return False
        self._interpreter.resize_tensor_input(index, shape, strict=True)
        self._planned_shapes[position] = shape
        return True


def _has_wrapper(interpreter) -> bool:
    """Whether the interpreter has the C++ wrapper methods run_single calls (ai_edge_litert's do)."""
    wrapper = getattr(interpreter, "_interpreter", None)
    return all(hasattr(wrapper, name) for name in ("SetTensor", "Invoke", "GetTensor"))


def _run_error(error: Exception) -> ModelRunError:
    # Feeds were checked against the specs already: what fails here is the model (a damaged file:
    # "Tensor data is null", a tensor the plan cannot hold, an op that rejects its input).
    return ModelRunError(f"LiteRT failed to run the model: {_first_line(error)}")


_first_allocation = [True]  # LiteRT prints its XNNPACK line at the first allocation in a process


def _allocate(interpreter) -> None:
    """allocate_tensors(); the first time in this process with LiteRT's 'Created TensorFlow Lite XNNPACK
    delegate' line kept off stderr (see edgeml_runtime.native_logs)."""
    if not _first_allocation[0]:
        interpreter.allocate_tensors()
        return
    from edgeml_runtime.native_logs import quiet_native_logs

    with quiet_native_logs():
        interpreter.allocate_tensors()
    _first_allocation[0] = False


def _spec(details: dict, name: str) -> TensorSpec:
    signature = details.get("shape_signature", details["shape"])
    shape = tuple(None if int(dim) < 0 else int(dim) for dim in signature)
    scale, zero_point = details.get("quantization", (0.0, 0))
    quantization = Quantization(float(scale), int(zero_point)) if scale else None
    return TensorSpec(name=name, shape=shape, dtype=np.dtype(details["dtype"]).name, quantization=quantization)
