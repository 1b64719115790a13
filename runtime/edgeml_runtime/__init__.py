"""edgeml_runtime: run edgeml models on the device with numpy and LiteRT or ONNX Runtime.

Never imports TensorFlow. Backends are imported on first use, so importing this package is cheap.
"""

from edgeml_runtime._version import __version__
from edgeml_runtime.errors import BackendNotInstalled, CheckFailed, EdgeMLError, InputError, ModelLoadError

__all__ = [
    "BackendNotInstalled",
    "CheckFailed",
    "EdgeMLError",
    "InputError",
    "ModelLoadError",
    "__version__",
]
