"""Running the conversion in a child process.

The TFLite converter can abort the whole process on some models and leaks memory on every call; in a
child process a crash becomes an error message for the user instead of a dead shell, and the memory
goes back when the child ends. The child is a fresh interpreter (`python -m edgeml_converters.isolation`),
not multiprocessing's spawn, which would re-run the caller's script in the child when it lacks an
`if __name__ == "__main__"` guard. Its stdout/stderr (TensorFlow's log chatter) go to a log file whose
last line is quoted if it dies; results and progress events (`edgeml_runtime.progress.ProgressEvent`)
come back pickled over a pipe, so the caller's progress callback sees the same events as in-process.

The child works in its own scratch folder (`edgeml-convert-*`, the temporary directory of everything it
and TensorFlow create), removed when it ends, and by the next conversion when it was killed
(`output_dir.remove_leftovers`).

A traceback does not survive pickling, so the child sends its formatted traceback along with the
error, and the parent re-raises the error `from` a `ChildTraceback` holding it (as concurrent.futures
does): the CLI shows only the error's one line, and with `--debug` the whole chain, child frames first.
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
from edgeml_runtime.progress import ProgressCallback, ProgressEvent

from edgeml_converters.errors import ConversionError

__all__ = ["ChildTraceback", "run_isolated"]

LOG_LINES_FOR_DEBUG = 200  # of the child's output, attached to a crash report (shown with --debug)


class ChildTraceback(Exception):
    """The conversion process's traceback (or, when it died, its last output), as text."""

    def __str__(self) -> str:
        return "\n" + self.args[0]


def run_isolated(function: Callable, kwargs: dict, progress: ProgressCallback = None, *, step: str = "starting"):
    """`function(**kwargs, progress=...)` in a child process; its result, or its error re-raised here.
    `function` must be importable by module and name; the events it reports reach `progress`. `step` names
    what the child does before its first event (quoted if it dies then)."""
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
            return _receive(messages, child, log, progress, step)
        finally:
            messages.close()
            if child.poll() is None:
                child.kill()
            child.wait()


def _receive(messages: Connection, child, log, progress: ProgressCallback, step: str):
    while True:
        try:
            kind, payload = messages.recv()
        except (EOFError, OSError):
            break
        if kind == "progress":
            step = payload.message
            if progress is not None:
                progress(payload)
        elif kind == "result":
            return payload
        else:  # "error"
            error, child_traceback = payload
            raise error from ChildTraceback(f'the conversion process\'s traceback:\n{child_traceback}')
    code = child.wait()
    lines = _log_lines(log)
    tail = f"; its last output: {lines[-1][:300]}" if lines else ""
    output = "\n".join(lines[-LOG_LINES_FOR_DEBUG:]) or "(no output)"
    raise ConversionError(
        f"the conversion process died ({_describe_exit(code)}) during '{step}'{tail}; "
        "the converter crashed on this model: try another --quantize mode or --to format"
    ) from ChildTraceback(f"the conversion process's last output:\n{output}")


def _child_main(message_fd: int) -> None:
    from edgeml_converters.output_dir import make_scratch_dir, remove_scratch_dir

    messages = Connection(message_fd, readable=False)
    module_name, qualname, kwargs, parent_path = pickle.loads(sys.stdin.buffer.read())
    sys.path[:] = parent_path + [entry for entry in sys.path if entry not in parent_path]
    scratch = make_scratch_dir("edgeml-convert-")
    tempfile.tempdir = os.environ["TMPDIR"] = str(scratch)  # Python's and TensorFlow's temporary files

    def progress(event: ProgressEvent) -> None:  # events are frozen dataclasses: they pickle as they are
        messages.send(("progress", event))

    try:
        function = getattr(importlib.import_module(module_name), qualname)
        outcome = ("result", function(**kwargs, progress=progress))
    except EdgeMLError as error:
        outcome = ("error", (error, traceback.format_exc()))
    except BaseException as error:  # noqa: BLE001 - anything else becomes one ConversionError
        traceback.print_exc()
        wrapped = ConversionError(f"conversion failed: {type(error).__name__}: {error}")
        outcome = ("error", (wrapped, traceback.format_exc()))
    finally:
        remove_scratch_dir(scratch)  # before answering: the parent may end this process once answered
    try:
        messages.send(outcome)
    finally:
        messages.close()


def _describe_exit(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _log_lines(log) -> list:
    log.seek(0)
    return [line.rstrip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]


if __name__ == "__main__":
    _child_main(int(sys.argv[1]))
