"""Run edgeml's command lines as a user does: the one way the tests and the benchmarks do it.

    edgeml("inspect", model, "--json")                  # `python -m edgeml ...` in a child process
    edgeml("deploy", bundle, check_exit=0)              # ... and assert its exit code (message: stdout+stderr)
    runtime_cli("bench", model, "--json")               # `python -m edgeml_runtime ...` (device side)
    invoke("train", "--dataset", "wine")                # `edgeml` in this process (click's CliRunner)
    edgeml("bench", model, env=user_environment())      # as a user's shell runs it: no TF_CPP_MIN_LOG_LEVEL
    native_noise(done.stderr)                           # TensorFlow/XLA/absl/LiteRT start-up lines in it

Child processes run this interpreter (sys.executable), so they see the packages the tests see. `invoke`
is for tests that run many commands which import TensorFlow: in-process, it is imported once. Standard
library only at import time (the runtime-only environments have no click and no edgeml).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Dict, List, Mapping, Optional

__all__ = ["NATIVE_NOISE", "command", "edgeml", "invoke", "native_noise", "run_module", "runtime_cli",
           "user_environment"]

# What TensorFlow, XLA, absl and LiteRT print from C++ at start-up, which no edgeml command may show
# (edgeml.quiet; `edgeml --debug` shows it).
NATIVE_NOISE = re.compile(
    r"cudart_stub|cuInit|cuda_|oneDNN|node_def_util|cpu_feature_guard|absl::InitializeLog|TF-TRT"
    r"|Created TensorFlow Lite XNNPACK delegate|^[IWEF]\d{4} \d\d:\d\d:\d\d", re.MULTILINE)


def user_environment(**extra: str) -> Dict[str, str]:
    """This process's environment without the settings that quiet native libraries (the test set-up sets
    TF_CPP_MIN_LOG_LEVEL), as in a user's shell; `extra` added."""
    quieting = ("TF_CPP_MIN_LOG_LEVEL", "EDGEML_NATIVE_LOGS")
    return {**{key: value for key, value in os.environ.items() if key not in quieting}, **extra}


def native_noise(text: str) -> List[str]:
    """The lines of `text` that are native libraries' start-up chatter."""
    return [line for line in text.splitlines() if NATIVE_NOISE.search(line)]


def command(module: str, *args) -> List[str]:
    """argv of `python -m MODULE ARGS...` with this interpreter (arguments turned into str)."""
    return [sys.executable, "-m", module, *map(str, args)]


def run_module(module: str, *args, check_exit: Optional[int] = None, env: Optional[Mapping[str, str]] = None,
               cwd=None, timeout: Optional[float] = 600) -> subprocess.CompletedProcess:
    """Run `python -m MODULE ARGS...` to completion, capturing text stdout/stderr. With `check_exit`,
    assert that it exited with that code."""
    done = subprocess.run(command(module, *args), capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)
    if check_exit is not None:
        assert done.returncode == check_exit, (f"exit {done.returncode} (expected {check_exit})\n"
                                               f"stdout: {done.stdout}\nstderr: {done.stderr}")
    return done


def edgeml(*args, **options) -> subprocess.CompletedProcess:
    """`python -m edgeml ARGS...` (options as for run_module)."""
    return run_module("edgeml", *args, **options)


def runtime_cli(*args, **options) -> subprocess.CompletedProcess:
    """`python -m edgeml_runtime ARGS...` (options as for run_module)."""
    return run_module("edgeml_runtime", *args, **options)


def invoke(*args, check_exit: Optional[int] = None):
    """`edgeml ARGS...` in this process through click's CliRunner; returns its Result (`exit_code`,
    `stdout`, `stderr`, and `output`, both streams interleaved)."""
    from click.testing import CliRunner

    from edgeml.cli import cli

    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    if check_exit is not None:
        assert result.exit_code == check_exit, f"exit {result.exit_code} (expected {check_exit})\n{result.output}"
    return result
