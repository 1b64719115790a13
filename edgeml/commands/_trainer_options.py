"""Small helpers shared by the train, explore and quickstart commands."""

from __future__ import annotations

import os


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ start-up chatter; must run before TensorFlow is first imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

