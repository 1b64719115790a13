"""A function that dies like a native converter crash, for the isolation test (imported by the child)."""

from __future__ import annotations

import os


def abort_after_progress(progress):
    progress("converting the crashing op")
    os.abort()
