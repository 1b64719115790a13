"""Functions the isolation tests run in the conversion process (imported there by module and name)."""

from __future__ import annotations

import os

from edgeml_runtime.progress import report


def abort_after_progress(progress):
    """Dies like a native converter crash."""
    report(progress, "export", "converting the crashing op")
    os.abort()


def count_samples(progress, total: int):
    """Reports a counter and a warning, as a conversion does, and returns a result."""
    for done in range(1, total + 1):
        report(progress, "calibrate", "calibrating", done=done, total=total)
    report(progress, "export", "a warning from the child", level="warning")
    return {"samples": total, "pid": os.getpid()}
