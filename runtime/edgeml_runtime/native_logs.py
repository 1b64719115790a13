"""Start-up lines that native libraries write straight to file descriptor 2, kept off the user's terminal.

LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." the first time a process allocates
an interpreter, TensorFlow prints CUDA and CPU-feature notices while it is imported: C++ writes that no
Python logging setting reaches. `quiet_native_logs()` points descriptor 2 at a temporary file around such a
call and drops what was written, unless the call fails: then the captured text is written to stderr after
all, since it may explain the failure. With EDGEML_NATIVE_LOGS=1 (set by `edgeml --debug`) nothing is
redirected.

Descriptor 2 belongs to the whole process: while it is redirected, other threads' stderr lines go to the
file too. Use it only around short calls made once per process (a first import, a first allocation).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["NATIVE_LOGS_ENV", "native_logs_shown", "quiet_native_logs"]

NATIVE_LOGS_ENV = "EDGEML_NATIVE_LOGS"
_lock = threading.RLock()


def native_logs_shown() -> bool:
    """True when the user asked to see native libraries' logs (EDGEML_NATIVE_LOGS=1)."""
    return os.environ.get(NATIVE_LOGS_ENV, "") not in ("", "0")


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Send what native code writes to descriptor 2 inside the block to a temporary file, and drop it
    unless the block raises (then it is replayed on stderr before the exception propagates)."""
    if native_logs_shown():
        yield
        return
    with _lock:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):  # no descriptor 2 (a daemon), or a closed stderr
            yield
            return
        with tempfile.TemporaryFile() as captured:
            try:
                os.dup2(captured.fileno(), 2)
                try:
                    yield
                except BaseException:
                    _restore(saved)
                    _replay(captured)
                    raise
                finally:
                    _restore(saved)
            finally:
                os.close(saved)


def _restore(saved: int) -> None:
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    os.dup2(saved, 2)


def _replay(captured) -> None:
    captured.seek(0)
    text = captured.read()
    if text:
        try:
            os.write(2, text)
        except OSError:
            pass
