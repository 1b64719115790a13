"""Hostile models: mutation fuzzing of the committed real .tflite and .onnx files with a fixed seed.

Each mutant is loaded and run once (on synthetic inputs) in its own child process, forked from a worker
that has numpy and the backends imported already (a fork costs milliseconds, a fresh interpreter a few
hundred), and the child's end is classified: it ran, it was refused with an EdgeMLError (a clean one-line
error), it raised anything else (an "internal error"), it died by a signal (a crash), or it ran past the
time limit (a hang). Only the first two are allowed. The figures are printed (pytest -s shows them).
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.models import DATA, backend_installed

SEED = 12
MUTANTS_PER_MODEL = 80  # x 5 models = 400 cases; about 20 s here
CASE_SECONDS = 20  # a load + one run of a tiny model takes milliseconds; beyond this it hangs
SUITE_SECONDS = 120
MEMORY_LIMIT = 4 << 30  # address space of each case: a model asking for more gets an error, not the OOM killer
MODELS = ["mlp_fp32.tflite", "mlp_int8.tflite", "two_io_fp32.tflite", "mlp_fp32.onnx", "two_io_fp32.onnx"]

WORKER = r"""
import json, os, resource, signal, sys
import numpy
import edgeml_runtime
from edgeml_runtime.bench import synthetic_inputs
from edgeml_runtime.errors import EdgeMLError, first_line
from edgeml_runtime import formats
import importlib, importlib.util
for backend in formats.BACKENDS.values():  # imported once here, so that each fork starts warm
    if importlib.util.find_spec(backend.module) is not None and backend.name != "tflite_runtime":
        importlib.import_module(backend.session_module).import_backend(backend)
case_seconds, memory_limit = int(sys.argv[1]), int(sys.argv[2])

def case(path, write):
    signal.alarm(case_seconds)
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    try:
        model = edgeml_runtime.load(path, threads=1)
        model.run(synthetic_inputs(model.inputs))
        result = {"outcome": "ran"}
    except EdgeMLError as error:
        result = {"outcome": "refused", "error": type(error).__name__, "message": first_line(error)}
    except BaseException as error:
        result = {"outcome": "unclean", "error": type(error).__name__, "message": first_line(error)}
    os.write(write, json.dumps(result).encode())

for line in sys.stdin:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            case(line.strip(), write)
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while True:
        chunk = os.read(read, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    answer = {"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
              "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}
    try:
        answer.update(json.loads(b"".join(chunks) or b"{}"))
    except ValueError:
        answer["outcome"] = "garbled"
    print(json.dumps(answer), flush=True)
"""

INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
INTERESTING_INT32 = (0, 1, 2, 4, 8, -1, -2, 0x7FFFFFFF, -0x80000000, 0xFFFF, 0x10000, 1 << 20, 1 << 28)


def mutate(data: bytes, rng: random.Random) -> tuple:
    """One mutant of `data` and the name of what was done: flipped bits, interesting bytes or 32-bit
    integers (flatbuffer offsets and sizes, dims), truncation, a duplicated, moved or deleted chunk."""
    out = bytearray(data)
    kind = rng.choice(["bits", "bytes", "int32", "truncate", "duplicate", "delete", "splice"])
    if kind == "bits":
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(out))
            out[position] ^= 1 << rng.randrange(8)
    elif kind == "bytes":
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.choice(INTERESTING_BYTES)
    elif kind == "int32":
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(0, len(out) - 4) & ~3
            value = rng.choice(INTERESTING_INT32 + (len(data), len(data) - rng.randint(1, 64)))
            out[position:position + 4] = struct.pack("<i" if value < 1 << 31 else "<I", value)
    elif kind == "truncate":
        del out[rng.randrange(8, len(out)):]
    elif kind == "duplicate":
        start = rng.randrange(len(out))
        chunk = out[start:start + rng.randint(1, 256)]
        position = rng.randrange(len(out))
        out[position:position] = chunk
    elif kind == "delete":
        start = rng.randrange(8, len(out))
        del out[start:start + rng.randint(1, 256)]
    else:  # splice: overwrite a chunk with another part of the file (valid-looking structures, wrong place)
        length = rng.randint(4, 128)
        source, target = rng.randrange(len(out) - length), rng.randrange(len(out) - length)
        out[target:target + length] = out[source:source + length]
    return bytes(out), kind


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mutants")
    cases = []
    for model_index, name in enumerate(MODELS):
        if not backend_installed(name):
            continue
        original = (DATA / name).read_bytes()
        rng = random.Random(SEED * 1000 + model_index)
        for index in range(MUTANTS_PER_MODEL):
            data, kind = mutate(original, rng)
            path = folder / f"{Path(name).stem}-{index:03d}-{kind}{Path(name).suffix}"
            path.write_bytes(data)
            cases.append(path)
    if not cases:
        pytest.skip("no backend installed")
    return cases


class Worker:
    """The forking worker process; restarted if it ever dies itself."""

    def __init__(self, log: Path):
        self.log = log
        self.process = None

    def run(self, path: Path) -> dict:
        if self.process is None or self.process.poll() is not None:
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-c", WORKER, str(CASE_SECONDS), str(MEMORY_LIMIT)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            return {"outcome": "worker died", "exit": self.process.wait(timeout=30)}
        return json.loads(line)

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


def classify(answer: dict) -> str:
    if answer.get("signal") == 14:  # SIGALRM: the case's time limit
        return "hang"
    if answer.get("signal"):
        return "crash"
    return answer.get("outcome", "garbled")


def test_mutated_models_never_crash_hang_or_fail_uncleanly(corpus, tmp_path):
    worker = Worker(tmp_path / "worker.log")
    started = time.monotonic()
    outcomes, bad, errors = Counter(), [], Counter()
    try:
        for path in corpus:
            answer = worker.run(path)
            outcome = classify(answer)
            outcomes[outcome] += 1
            if outcome == "refused":
                errors[answer["error"]] += 1
            elif outcome != "ran":
                bad.append((path.name, outcome, answer))
    finally:
        worker.close()
    elapsed = time.monotonic() - started
    summary = (f"fuzzed {len(corpus)} mutants of {len(MODELS)} models (seed {SEED}) in {elapsed:.1f} s: "
               f"{dict(outcomes)}; refused as {dict(errors)}")
    print(summary)
    assert bad == [], f"{summary}\nnot clean: {bad[:10]}"
    assert outcomes["refused"] > 0 and outcomes["ran"] > 0, summary  # both kinds of mutants happen
    assert elapsed < SUITE_SECONDS, summary
