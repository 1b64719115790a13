"""Model.run's path for what an app does on every sample: one array into a one-input model, of the same
shape as the call before.

On a small model the checks and the (de)quantization around the backend call cost as much as the call
itself (benchmarks/runtime_overhead.py), so here they are cut to what can change from call to call:

- the shape is compared with the last accepted one (a tuple comparison); only a new shape is matched
  against the input's spec, whose dimensions may be None;
- finiteness is checked by one dot product (`feeds.all_finite`'s first step, inlined);
- a float32 array into a quantized .tflite model goes to its float-I/O twin (backends/float_io.py), which
  quantizes and dequantizes inside the interpreter, where it costs nanoseconds instead of four numpy calls
  (made after TWIN_AFTER_CALLS calls);
- otherwise real values into a quantized input are quantized into buffers reused from call to call
  (`quantization.Quantizer`), and 8-bit outputs are dequantized by table look-up into new arrays
  (`quantization.Dequantizer`): what the caller gets is never overwritten by a later call;
- the backend is called through `session.run_single(array)`, without the general path's dict of feeds.

Anything else (another dtype, a non-contiguous array fed as it is, a non-finite value, a shape the spec refuses)
returns None, and Model.run takes the general path (`feeds.prepare_feeds`), which checks everything and
says what is wrong. Results are the same bit for bit either way (tests/runtime/test_quantized_io_fast.py).
"""

from __future__ import annotations

from math import isfinite
from typing import Dict, List, Optional

import numpy as np

from edgeml_runtime.feeds import all_finite, shape_matches, vdot
from edgeml_runtime.quantization import Dequantizer, Quantizer

__all__ = ["FastRun"]

_FLOAT32 = np.dtype(np.float32)
_FLOATS = (_FLOAT32, np.dtype(np.float64))
MAX_VALUES = 1 << 16  # inputs up to this many values take the fast path
# A quantized model's float-I/O twin is made when this many float32 arrays have been run: after the one or two
# calls of a process that only checks a model, early in any loop (and within benchmarks' warm-up).
TWIN_AFTER_CALLS = 8


class FastRun:
    """The fast path for one session. A LiteRT session serves one thread, and so does its FastRun with its
    buffers and float-I/O twin; a session shared by threads (ONNX Runtime) shares its FastRun, which then
    holds no buffer (ONNX inputs are never quantized) and only ever replaces its remembered shape as a whole."""

    def __init__(self, session):
        spec = session.inputs[0]
        self._dtype = spec.numpy_dtype
        self._spec_shape = spec.shape
        self._run_single = session.run_single
        self._names: List[str] = [output.name for output in session.outputs]
        self._single_name = self._names[0] if len(self._names) == 1 else None
        self._quantizer = Quantizer(spec.quantization, spec.numpy_dtype) if spec.quantization else None
        self._dequantizers = [Dequantizer(output.quantization, output.numpy_dtype) if output.quantization else None
                              for output in session.outputs]
        self._dequantizes = any(self._dequantizers)
        # One dequantized output (a classifier's scores): its name and dequantizing function, bound once.
        only = len(self._names) == 1 and self._dequantizers[0] is not None
        self._only_output = self._names[0] if only else None
        self._only_dequantize = self._dequantizers[0].function() if only else None
        self._accepted = None  # the last shape the spec accepted
        # What runs a float32 array into float outputs with nothing around it: the session itself for a float
        # model (the finiteness check is then made here); for a quantized one its float-I/O twin, which checks
        # inside the backend and returns None for NaN or an infinity, made once TWIN_AFTER_CALLS float arrays
        # came through here (see _make_twin).
        plain_float = self._quantizer is None and not self._dequantizes and self._dtype == _FLOAT32
        self._float_run = self._run_single if plain_float else None
        self._float_run_checks_finite = False
        wants_twin = (self._quantizer is not None or self._dequantizes) and hasattr(session, "float_io_twin")
        self._calls_before_twin = TWIN_AFTER_CALLS if wants_twin else 0
        self._session = session

    def _make_twin(self) -> None:
        """Switch to the session's float-I/O twin, where the backend makes one (backends/float_io.py). Made
        only now: it costs tens of milliseconds (reading and rewriting the model, a second interpreter, a
        probe), which a process that runs the model once or twice should not pay."""
        twin = self._session.float_io_twin()
        if twin is not None:
            self._float_run, self._float_run_checks_finite = twin.run_single, True

    @classmethod
    def for_session(cls, session) -> Optional[FastRun]:
        """The session's FastRun, or None for a model with several inputs, a session without run_single,
        or a quantized input on a session shared by threads (the buffers would be shared)."""
        inputs = session.inputs
        if len(inputs) != 1 or not hasattr(session, "run_single"):
            return None
        if inputs[0].quantization is not None and session.concurrent:
            return None
        return cls(session)

    def run(self, array: np.ndarray, raw: bool, allow_nonfinite: bool) -> Optional[Dict[str, np.ndarray]]:
        """Outputs by name, or None when `array` needs the general path."""
        if array.shape != self._accepted and not self._accept(array.shape):
            return None
        float_run = self._float_run
        if float_run is not None and array.dtype is _FLOAT32 and not raw and array.flags.c_contiguous:
            # Real values in and out, the backend doing any conversion: what apps do on every sample.
            if self._float_run_checks_finite:
                outputs = float_run(array)
                if outputs is None:
                    return None  # NaN or infinity (or a sum that overflowed): the general path decides
            elif allow_nonfinite or isfinite(vdot(array, array)) or all_finite(array):
                outputs = float_run(array)
            else:
                return None  # the general path says which input holds NaN or infinity
            if self._single_name is not None:
                return {self._single_name: outputs[0]}
            return dict(zip(self._names, outputs))
        if self._calls_before_twin and not raw and array.dtype is _FLOAT32:
            self._calls_before_twin -= 1
            if not self._calls_before_twin:
                self._make_twin()
        quantizer = self._quantizer
        if quantizer is not None and not raw:
            # Real values into a quantized input, converted here: float64 arrays, or no twin.
            if array.dtype not in _FLOATS or not (allow_nonfinite or all_finite(array)):
                return None
            outputs = self._run_single(quantizer(array))
            if self._only_output is not None:
                return {self._only_output: self._only_dequantize(outputs[0])}
            return {name: values if dequantizer is None else dequantizer(values)
                    for name, values, dequantizer in zip(self._names, outputs, self._dequantizers)}
        if array.dtype != self._dtype or not array.flags.c_contiguous:
            return None
        if array.dtype.kind == "f" and not allow_nonfinite and not all_finite(array):
            return None
        outputs = self._run_single(array)
        if raw or not self._dequantizes:
            return dict(zip(self._names, outputs))
        return {name: values if dequantizer is None else dequantizer(values)
                for name, values, dequantizer in zip(self._names, outputs, self._dequantizers)}

    def _accept(self, shape) -> bool:
        """Whether arrays of `shape` may take this path (then remembered): the input's spec accepts the shape
        and the input is small (for a big one the general path's costs are small beside the model's)."""
        size = 1
        for dim in shape:
            size *= dim
        if size > MAX_VALUES or not shape_matches(shape, self._spec_shape):
            return False
        self._accepted = shape
        return True
