"""edgeml_runtime: run edgeml models on the device with numpy and LiteRT or ONNX Runtime.

Never imports TensorFlow. Backends are imported on first use, so importing this package is cheap.
"""

from edgeml_runtime._version import __version__
from edgeml_runtime.errors import (
    BackendNotInstalled,
    CheckFailed,
    EdgeMLError,
    InputError,
    ModelLoadError,
    ModelRunError,
)
from edgeml_runtime.model import Model, load
from edgeml_runtime.quantization import dequantize, quantize
from edgeml_runtime.specs import Quantization, TensorSpec

__all__ = [
    "BackendNotInstalled",
    "BenchResult",
    "CheckFailed",
    "EdgeMLError",
    "InputError",
    "Model",
    "ModelLoadError",
    "ModelRunError",
    "Prediction",
    "Predictor",
    "Quantization",
    "ReloadingPredictor",
    "TensorSpec",
    "__version__",
    "benchmark",
    "dequantize",
    "load",
    "load_inputs_file",
    "quantize",
    "synthetic_inputs",
]

# Load on first use: an app that only runs a model, and `python -m edgeml_runtime` commands that do not
# need them, do not pay for their imports (process start-up is measured in benchmarks/process_cost.py).
_LAZY = {"Prediction": "predictor", "Predictor": "predictor", "ReloadingPredictor": "reload",
         "BenchResult": "bench", "benchmark": "bench", "load_inputs_file": "bench", "synthetic_inputs": "bench"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"edgeml_runtime.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'edgeml_runtime' has no attribute '{name}'")
