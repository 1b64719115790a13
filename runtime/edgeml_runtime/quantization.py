"""Affine (de)quantization, done exactly as TFLite does it: q = round(x / scale) + zero_point."""

from __future__ import annotations

import numpy as np

from edgeml_runtime.specs import Quantization

__all__ = ["dequantize", "quantize"]


def quantize(values: np.ndarray, quantization: Quantization, dtype) -> np.ndarray:
    """Float values to integers of `dtype`, rounding half to even and saturating at the dtype's range."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype)
    scaled = np.round(np.asarray(values, dtype=np.float32) / np.float32(quantization.scale))
    shifted = scaled + quantization.zero_point
    return np.clip(shifted, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, quantization: Quantization) -> np.ndarray:
    """Integers back to float32."""
    centered = np.asarray(values).astype(np.float32) - np.float32(quantization.zero_point)
    return centered * np.float32(quantization.scale)
