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

import numpy as np

from edgeml_runtime.specs import Quantization

__all__ = ["dequantize", "quantize"]


def quantize(values: np.ndarray, quantization: Quantization, dtype) -> np.ndarray:
    """Float values to integers of `dtype`: multiplied by the float32 reciprocal of the scale, rounded half to
    even, shifted by the zero point and saturated at the dtype's range (see the module docstring)."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype)
    reciprocal = np.float32(1.0) / np.float32(quantization.scale)
    scaled = np.round(np.asarray(values, dtype=np.float32) * reciprocal)
    shifted = scaled + quantization.zero_point
    return np.clip(shifted, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    """Integers back to float32: (q - zero_point) * scale."""
    centered = np.asarray(values).astype(np.float32) - np.float32(quantization.zero_point)
    return centered * np.float32(quantization.scale)
