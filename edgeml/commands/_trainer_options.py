"""Small helpers shared by the train, explore and quickstart commands."""

from __future__ import annotations

import os


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ start-up chatter; must run before TensorFlow is first imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def stderr_console():
    """Progress, tables and logs go to stderr so that --json output on stdout stays clean."""
    from edgeml.console import stderr_console as shared_stderr_console

    return shared_stderr_console()
