"""Importing TensorFlow quietly, on first use only (it takes seconds and prints pages of logs)."""

from __future__ import annotations

import logging
import os

__all__ = ["import_tensorflow"]


def import_tensorflow():
    """`tensorflow`, imported with its C++ info/warning logs and Python deprecation warnings silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    for name in ("tf2onnx", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return tf
