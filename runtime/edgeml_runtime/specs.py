"""Tensor specs: what a model takes and gives, in one backend-neutral form.

Plain immutable classes rather than dataclasses: `python -m edgeml_runtime bench` imports this module on
every start, and `dataclasses` is one of the imports a bare backend script does not pay for
(benchmarks/process_cost.py).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

__all__ = ["Quantization", "TensorSpec"]


class _Frozen:
    """Equality, hashing and repr by the fields in __slots__ (the public ones), and no assignment after
    __init__: what `@dataclass(frozen=True)` gave."""

    __slots__ = ()
    _fields: Tuple[str, ...] = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self._fields)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable; cannot set '{name}'")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete '{name}'")

    def __eq__(self, other) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self):  # pickling (e.g. to a worker process) goes through __init__
        return type(self), self._values()


class Quantization(_Frozen):
    """Affine quantization of a tensor: real = (q - zero_point) * scale."""

    __slots__ = ("scale", "zero_point")
    _fields = ("scale", "zero_point")

    def __init__(self, scale: float, zero_point: int):
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zero_point)

    def to_dict(self) -> dict:
        return {"scale": self.scale, "zero_point": self.zero_point}


class TensorSpec(_Frozen):
    """One input or output. `shape` holds None for dynamic dimensions (batch, usually)."""

    __slots__ = ("name", "shape", "dtype", "quantization", "_numpy_dtype")
    _fields = ("name", "shape", "dtype", "quantization")

    def __init__(self, name: str, shape: Tuple[Optional[int], ...], dtype: str,
                 quantization: Optional[Quantization] = None):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "quantization", quantization)
        object.__setattr__(self, "_numpy_dtype", np.dtype(dtype))  # cached: run() compares against it

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
