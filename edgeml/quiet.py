"""Quiet native start-up output in every `edgeml` command; all of it back with `edgeml --debug`.

TensorFlow, XLA and absl write CUDA probes ("cudart_stub", "cuInit"), CPU-feature notices, oneDNN and
graph warnings ("node_def_util") from C++; LiteRT announces its XNNPACK delegate. None of it helps a user
and most of it looks like an error. It is silenced where it comes from:

- the environment, before TensorFlow is imported: TF_CPP_MIN_LOG_LEVEL=3 (TensorFlow's C++ logging: the
  cuInit, oneDNN and node_def_util lines), unless the user set it;
- the first `import tensorflow` of the process runs with descriptor 2 redirected (the "absl::InitializeLog"
  and cudart_stub lines are printed before any log level is read), then Python's `tensorflow` and `absl`
  loggers are set to ERROR;
- the first LiteRT allocation, in edgeml_runtime's LiteRT backend (edgeml_runtime.native_logs).

`--debug` sets EDGEML_NATIVE_LOGS=1 instead, which leaves every one of these alone.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import os
import sys

from edgeml_runtime.native_logs import NATIVE_LOGS_ENV, quiet_native_logs

__all__ = ["configure"]

QUIET_MODULES = ("tensorflow",)  # keras and tf_keras import tensorflow first


def configure(debug: bool) -> None:
    """Set up the process for a command: quiet unless `debug` (see the module's docstring)."""
    if debug:
        os.environ[NATIVE_LOGS_ENV] = "1"  # child processes (the converter) inherit it
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFirstImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFirstImport())


class _QuietFirstImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it wraps the loader of the first `import tensorflow`, then steps aside."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in QUIET_MODULES:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self._loader  # the module sees its real loader (resources, is_package)
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        with quiet_native_logs():
            self._loader.exec_module(module)
        for name in ("tensorflow", "absl", "tf2onnx"):
            logging.getLogger(name).setLevel(logging.ERROR)

    def __getattr__(self, name):
        return getattr(self._loader, name)
