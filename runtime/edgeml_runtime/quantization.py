"""Affine (de)quantization, bit for bit as LiteRT's own QUANTIZE and DEQUANTIZE ops do it.

    quantize:   q = clip(round_half_to_even(x * float32(1 / scale)) + zero_point, dtype's min, dtype's max)
    dequantize: x = float32(q - zero_point) * float32(scale)

Everything in float32. What the rules are was decided by an oracle, not by reading kernels:
tests/runtime/test_quantization_oracle.py runs models made of nothing but QUANTIZE/DEQUANTIZE ops
(tests/runtime/data/quantize_oracle.*) on values exactly halfway between two steps and on their float32
neighbours, and compares with these functions. What it found:

- LiteRT's kernels as `edgeml_runtime.load` runs them (XNNPACK, and the optimized builtin kernels without
  it) round half to EVEN, and multiply by the float32 reciprocal of the scale rather than divide by it:
  for a scale that is not a power of two (0.1) the two differ on values within one float32 step of a
  halfway point, so dividing would be off by one integer there. This module matches them exactly, for
  int8, uint8 and int16.
- TFLite's *reference* kernels (OpResolverType.BUILTIN_REF, a debugging option) round half away from zero
  and divide: they disagree with the optimized kernels themselves on every halfway point.
- ONNX Runtime's QuantizeLinear also rounds half to even but divides by the scale, so near-halfway values
  can differ by one step from LiteRT. The runtime never quantizes for ONNX Runtime: ONNX inputs and outputs
  carry no quantization parameters, only .tflite models do.
- Out-of-range values saturate at the integer type's ends. (LiteRT's int16 kernel wraps values whose
  scaled magnitude exceeds 2^31, e.g. 1e30, to -32768; this module saturates them.)
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from edgeml_runtime.specs import Quantization

__all__ = ["Dequantizer", "Quantizer", "dequantize", "quantize"]


def _clip_ufunc():
    """numpy's clip ufunc itself (np.clip calls it after a layer of Python that costs more than the clipping
    on a small array); maximum then minimum where a numpy release does not have it where expected."""
    try:
        from numpy._core.umath import clip  # numpy 2
    except ImportError:
        try:
            from numpy.core.umath import clip  # numpy 1.17-1.26
        except ImportError:
            clip = None
    return clip if isinstance(clip, np.ufunc) and clip.nin == 3 else _clip_by_extremes


def _clip_by_extremes(values, low, high, out):
    np.maximum(values, low, out=out)
    return np.minimum(out, high, out=out)


_clip = _clip_ufunc()
ROUNDING_MAGIC = 1.5 * 2.0**23  # adding it rounds a float32 |v| < 2^22 to an integer (see Quantizer)


def quantize(values: np.ndarray, quantization: Quantization, dtype) -> np.ndarray:
    """Float values to integers of `dtype`: multiplied by the float32 reciprocal of the scale, rounded half to
    even, shifted by the zero point and saturated at the dtype's range (see the module docstring)."""
    return Quantizer(quantization, dtype)(np.asarray(values)).copy()


def dequantize(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    """Integers back to float32: (q - zero_point) * scale."""
    centered = np.asarray(values).astype(np.float32) - np.float32(quantization.zero_point)
    return centered * np.float32(quantization.scale)


class Quantizer:
    """`quantize` for one tensor, its constants computed once: what `Model.run` calls on every inference, where
    every numpy call costs more than its arithmetic on a small input.

    int16: three numpy calls (four when the zero point is odd) into a buffer reused from call to call:

    1. v = x * r into a float32 scratch buffer (x cast to float32 first, as LiteRT sees it);
    2. v = clip(v, min - zp, max - zp): clipping before rounding is the same as after, since the bounds are
       integers and rounding keeps order;
    3. s = v + (1.5 * 2^23 + zp), zp even: s lies in [2^23, 2^24), where float32 has exactly the integers, so
       the addition rounds: to nearest, ties to even (IEEE 754), and with an even constant a tie goes to
       the even v. The float's low bits are then 0x400000 + zp + round(v) and its low byte(s) that integer
       in two's complement: the result is a view of those bytes, no cast needed. An odd zero point would
       send ties to odd integers: it is added after the rounding, exactly, as a fourth step.

    The constants are 0-d arrays and outputs are passed by position: numpy converts a scalar operand to an
    array on every call and parses keyword arguments, which on 64 values costs more than the arithmetic.

    int8 and uint8: two numpy calls, into a new array. The rule maps float32 values to integers in order (each step
    of it keeps order), so the integer of x is min + the number of thresholds t_k <= x, where t_k is the
    smallest float32 the rule maps to min + k + 1. The 255 thresholds are found once, by bisection over
    the float32 values with the rule itself (`_thresholds`); then a search sorted and a table look-up give
    the integers: exactly the rule's, on every float32 (tests/runtime/test_quantized_io_fast.py).
    """

    def __init__(self, quantization: Quantization, dtype):
        self.dtype = np.dtype(dtype)
        info = np.iinfo(self.dtype)
        zero_point = int(quantization.zero_point)
        self.reciprocal = np.array(np.float32(1.0) / np.float32(quantization.scale))
        self.low = np.array(np.float32(int(info.min) - zero_point))
        self.high = np.array(np.float32(int(info.max) - zero_point))
        even = zero_point % 2 == 0
        self.magic = np.array(np.float32(ROUNDING_MAGIC + (zero_point if even else 0)))
        self.zero_point = None if even else np.array(np.float32(zero_point))
        # Where an integer sits in its float32: the low bytes, first on little-endian machines.
        self._offset = 0 if sys.byteorder == "little" else 4 - self.dtype.itemsize
        self._shape = None
        # 8-bit types: by thresholds (see the class docstring), one search and one look-up per call.
        self._thresholds = self._codes = None
        if self.dtype.itemsize == 1:
            self._thresholds = _thresholds(float(quantization.scale), zero_point, self.dtype.name)
            self._codes = np.arange(int(info.min), int(info.max) + 1).astype(self.dtype)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Integers for `values` (real numbers). For 16-bit types a strided view of this quantizer's buffer,
        valid until its next call, so only for a consumer that copies at once (LiteRT's set_tensor does;
        quantize() copies); for 8-bit types a new array."""
        if values.shape != self._shape:
            self._allocate(values.shape)
        scratch = self.scratch
        if values.dtype != scratch.dtype:
            scratch[...] = values
            values = scratch
        if self._thresholds is not None:
            return self._codes.take(self._thresholds.searchsorted(values, "right"))
        np.multiply(values, self.reciprocal, scratch)
        _clip(scratch, self.low, self.high, scratch)
        np.add(scratch, self.magic, scratch)
        if self.zero_point is not None:
            np.add(scratch, self.zero_point, scratch)
        return self._integers

    def _allocate(self, shape) -> None:
        self.scratch = np.empty(shape, np.float32)
        self._integers = np.ndarray(shape, self.dtype, buffer=self.scratch, offset=self._offset,
                                    strides=self.scratch.strides)
        self._shape = shape


_INT32_MIN = -(2**31)


@functools.lru_cache(maxsize=64)
def _thresholds(scale: float, zero_point: int, dtype_name: str) -> np.ndarray:
    """For codes k = min + 1 ... max of an 8-bit dtype, the smallest float32 the rule maps to k or above,
    found by bisection over the float32 values in order (the rule maps them to integers in order)."""
    info = np.iinfo(dtype_name)
    reciprocal = np.float32(1.0) / np.float32(scale)
    targets = np.arange(int(info.min) + 1, int(info.max) + 1, dtype=np.float32)
    below = np.full(targets.shape, _order(np.float32(-np.inf)))  # maps below every target
    above = np.full(targets.shape, _order(np.float32(np.inf)))  # maps to the top code, at least every target
    with np.errstate(over="ignore", invalid="ignore"):
        while (above - below > 1).any():
            middle = below + (above - below) // 2
            codes = np.clip(np.rint(_from_order(middle) * reciprocal) + np.float32(zero_point), info.min, info.max)
            reached = codes >= targets
            above, below = np.where(reached, middle, above), np.where(reached, below, middle)
    return _from_order(above)


def _order(value: np.float32) -> int:
    """A float32's place among all float32 values: an integer that orders them as their values do."""
    bits = int(np.array(value, np.float32).view(np.int32))
    return bits if bits >= 0 else _INT32_MIN - bits


def _from_order(order: np.ndarray) -> np.ndarray:
    """The float32 values at these places (_order's inverse)."""
    bits = np.where(order >= 0, order, _INT32_MIN - order).astype(np.int32)
    return bits.view(np.float32)


class Dequantizer:
    """`dequantize` for one tensor, returning a new array on every call (the caller may keep it). 8-bit
    tensors go through a 256-entry table made by `dequantize` itself, so every code maps to exactly the
    same float; wider ones are computed as `dequantize` does."""

    def __init__(self, quantization: Quantization, dtype):
        self.dtype = np.dtype(dtype)
        self.quantization = quantization
        self._table = None
        if self.dtype.itemsize == 1:
            # Ordered by the byte's unsigned value: take() maps an int8 code -k to entry 256 - k, as Python
            # indexing does, which is that byte's position; a uint8 code is its own position.
            self._table = dequantize(np.arange(256, dtype=np.uint8).view(self.dtype), quantization)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if self._table is not None and values.dtype == self.dtype:
            return self._table.take(values)
        return dequantize(values, self.quantization)

    def function(self):
        """What to call for arrays known to be of this dequantizer's dtype (a backend's outputs): the table's
        own take() where there is a table, saving a Python call per inference."""
        return self._table.take if self._table is not None else self
