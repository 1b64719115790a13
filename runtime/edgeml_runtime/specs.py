"""Tensor specs: what a model takes and gives, in one backend-neutral form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

__all__ = ["Quantization", "TensorSpec"]


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = (q - zero_point) * scale."""

    scale: float
    zero_point: int

    def to_dict(self) -> dict:
        return {"scale": self.scale, "zero_point": self.zero_point}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output. `shape` holds None for dynamic dimensions (batch, usually)."""

    name: str
    shape: Tuple[Optional[int], ...]
    dtype: str
    quantization: Optional[Quantization] = None

    def __post_init__(self):
        # Cached: run() compares against it on every call.
        object.__setattr__(self, "_numpy_dtype", np.dtype(self.dtype))

    @property
    def numpy_dtype(self) -> np.dtype:
        return self._numpy_dtype

    @property
    def is_quantized(self) -> bool:
        return self.quantization is not None

    def describe(self) -> str:
        """Short text such as `(None, 64) float32` or `(1, 8, 8, 1) int8 q(0.0627, -128)`."""
        dims = ", ".join("None" if d is None else str(d) for d in self.shape)
        text = f"({dims}{',' if len(self.shape) == 1 else ''}) {self.dtype}"
        if self.quantization:
            text += f" q({self.quantization.scale:.6g}, {self.quantization.zero_point})"
        return text

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "quantization": self.quantization.to_dict() if self.quantization else None,
        }
