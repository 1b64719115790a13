"""Running the conversion in a child process.

The TFLite converter can abort the whole process on some models and leaks memory on every call; in a
child process a crash becomes an error message for the user instead of a dead shell, and the memory
goes back when the child ends. The child is a fresh interpreter (`python -m edgeml_converters.isolation`),
not multiprocessing's spawn, which would re-run the caller's script in the child when it lacks an
`if __name__ == "__main__"` guard. Its stdout/stderr (TensorFlow's log chatter) go to a log file whose
last line is quoted if it dies; results and progress come back pickled over a pipe.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import traceback
from multiprocessing.connection import Connection
from typing import Callable, Optional

from edgeml_runtime import EdgeMLError

from edgeml_converters.errors import ConversionError

__all__ = ["run_isolated"]


def run_isolated(function: Callable, kwargs: dict, progress: Optional[Callable[[str], None]] = None):
    """`function(**kwargs, progress=...)` in a child process; its result, or its error re-raised here.
    `function` must be importable by module and name."""
    read_fd, write_fd = os.pipe()
    request = pickle.dumps((function.__module__, function.__qualname__, kwargs, sys.path))
    with tempfile.TemporaryFile(prefix="edgeml-convert-", suffix=".log") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "edgeml_converters.isolation", str(write_fd)],
            stdin=subprocess.PIPE, stdout=log, stderr=log, pass_fds=(write_fd,),
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")},
        )
        os.close(write_fd)  # only the child writes now, so reading sees EOF when it exits
        messages = Connection(read_fd, writable=False)
        try:
            child.stdin.write(request)
            child.stdin.close()
            return _receive(messages, child, log, progress)
        finally:
            messages.close()
            if child.poll() is None:
                child.kill()
            child.wait()


def _receive(messages: Connection, child, log, progress):
    step = "starting"
    while True:
        try:
            kind, payload = messages.recv()
        except (EOFError, OSError):
            break
        if kind == "progress":
            step = payload
            if progress:
                progress(payload)
        elif kind == "result":
            return payload
        else:  # "error"
            raise payload
    code = child.wait()
    raise ConversionError(
        f"the conversion process died ({_describe_exit(code)}) during '{step}'{_log_tail(log)}; "
        "the converter crashed on this model: try another --quantize mode or --to format"
    )


def _child_main(message_fd: int) -> None:
    messages = Connection(message_fd, readable=False)
    module_name, qualname, kwargs, parent_path = pickle.loads(sys.stdin.buffer.read())
    sys.path[:] = parent_path + [entry for entry in sys.path if entry not in parent_path]
    try:
        function = getattr(importlib.import_module(module_name), qualname)
        result = function(**kwargs, progress=lambda message: messages.send(("progress", message)))
        messages.send(("result", result))
    except EdgeMLError as error:
        messages.send(("error", error))
    except BaseException as error:  # noqa: BLE001 - anything else becomes one ConversionError
        traceback.print_exc()
        messages.send(("error", ConversionError(f"conversion failed: {type(error).__name__}: {error}")))
    finally:
        messages.close()


def _describe_exit(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _log_tail(log) -> str:
    log.seek(0)
    lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    return f"; its last output: {lines[-1][:300]}" if lines else ""


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
