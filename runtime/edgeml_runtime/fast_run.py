"""Model.run's path for what an app does on every sample: one array into a one-input model, of the same
shape as the call before.

On a small model the checks and the (de)quantization around the backend call cost as much as the call
itself (benchmarks/runtime_overhead.py), so here they are cut to what can change from call to call:

- the shape is compared with the last accepted one (a tuple comparison); only a new shape is matched
  against the input's spec, whose dimensions may be None;
- finiteness is checked by `feeds.all_finite` (one dot product, no temporary);
- real values into a quantized input are quantized into buffers reused from call to call
  (`quantization.Quantizer`), and 8-bit outputs are dequantized by table look-up into new arrays
  (`quantization.Dequantizer`): what the caller gets is never overwritten by a later call;
- the backend is called through `session.run_single(array)`, without the general path's dict of feeds.

Anything else (another dtype, a non-contiguous array fed as it is, a non-finite value, a shape the spec refuses)
returns None, and Model.run takes the general path (`feeds.prepare_feeds`), which checks everything and
says what is wrong. Results are the same bit for bit either way (tests/runtime/test_quantized_io_fast.py).
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from edgeml_runtime.feeds import all_finite, shape_matches
from edgeml_runtime.quantization import Dequantizer, Quantizer

__all__ = ["FastRun"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
MAX_VALUES = 1 << 16  # inputs up to this many values take the fast path


class FastRun:
    """The fast path for one session. A LiteRT session serves one thread, and so does its FastRun with its
    buffers; a session shared by threads (ONNX Runtime) shares its FastRun, which then holds no buffer
    (ONNX inputs are never quantized) and only ever replaces its remembered shape as a whole."""

    def __init__(self, session):
        spec = session.inputs[0]
        self._dtype = spec.numpy_dtype
        self._spec_shape = spec.shape
        self._run_single = session.run_single
        self._names: List[str] = [output.name for output in session.outputs]
        self._quantizer = Quantizer(spec.quantization, spec.numpy_dtype) if spec.quantization else None
        self._dequantizers = [Dequantizer(output.quantization, output.numpy_dtype) if output.quantization else None
                              for output in session.outputs]
        self._dequantizes = any(self._dequantizers)
        # One dequantized output (a classifier's scores): its name and dequantizing function, bound once.
        only = len(self._names) == 1 and self._dequantizers[0] is not None
        self._only_output = self._names[0] if only else None
        self._only_dequantize = self._dequantizers[0].function() if only else None
        self._accepted = None  # the last shape the spec accepted

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
        quantizer = self._quantizer
        if quantizer is not None and not raw:
            # Real values into a quantized input: the case this module is for, in as few steps as it takes.
            if array.dtype not in _FLOATS or not (allow_nonfinite or all_finite(array)):
                return None  # the general path says which input holds NaN or infinity
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
