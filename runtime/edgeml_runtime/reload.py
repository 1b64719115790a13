"""Hot reload: follow a deployment directory's `current` link and swap in new releases between calls.

`edgeml deploy` unpacks a release into `<dir>/releases/<version>/` and then switches `<dir>/current`
atomically. `ReloadingPredictor` polls that link from a background thread; on a change it first loads and
runs the new release in a child process (`isolate`): a model that crashes the backend (a segmentation
fault in native code cannot be caught) kills that child, not the service. Then it loads the release here,
smoke-tests it (runs it once, checks the outputs are finite and the inputs match what callers already
send) and only then replaces the serving predictor with one assignment. Each `predict` reads that
reference once, so a call runs entirely on one model and its result carries that model's version. A
release that fails is refused, reported, and the previous one keeps serving.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Optional

import numpy as np

from edgeml_runtime import formats
from edgeml_runtime.errors import CheckFailed, EdgeMLError, ModelLoadError, first_line
from edgeml_runtime.locate import current_release, is_deployment
from edgeml_runtime.predictor import Predictor

__all__ = ["ReloadingPredictor", "check_in_child", "smoke_test"]

Event = Callable[[dict], None]
CHECK_TIMEOUT = 120.0  # seconds the child process has to load and run a release (a big model on a Pi)


def smoke_test(candidate: Predictor, serving: Optional[Predictor] = None) -> None:
    """Raise CheckFailed unless `candidate` runs and can take what `serving` takes today."""
    from edgeml_runtime.bench import synthetic_inputs

    outputs = candidate.model.run(synthetic_inputs(candidate.model.inputs, batch=1))
    for name, value in outputs.items():
        if not np.isfinite(value).all():
            raise CheckFailed(f"smoke test: output '{name}' is not finite on a test input; the model is broken")
    candidate.interpret(outputs[candidate.output_spec.name])
    if serving is None:
        return
    now = [(s.name, s.shape) for s in serving.model.inputs]
    new = [(s.name, s.shape) for s in candidate.model.inputs]
    if now != new:
        raise CheckFailed(f"inputs changed from {now} to {new}; callers would break: restart the service to "
                          "switch to this model on purpose")
    if candidate.task != serving.task:
        raise CheckFailed(f"task changed from {serving.task} to {candidate.task}; restart the service to switch")


def check_in_child(release: Path, options: dict, *, timeout: Optional[float] = None) -> None:
    """Load and run `release` once in a child process; CheckFailed when it fails, dies or hangs there
    (for longer than `timeout`, default CHECK_TIMEOUT)."""
    timeout = timeout or CHECK_TIMEOUT
    try:
        done = subprocess.run(_check_command(release, options), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"loading and running it in a test process took over {timeout:g} s; it hangs") from None
    if done.returncode == 0:
        return
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        raise CheckFailed(f"loading and running it crashed a test process ({name}); the backend cannot run "
                          "this model safely")
    lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
    reason = lines[-1] if lines else f"the test process ended with exit code {done.returncode}"
    raise CheckFailed(reason[len("error: "):] if reason.startswith("error: ") else reason[:400])


def _check_command(release: Path, options: dict) -> List[str]:
    """The child process of `check_in_child`: this interpreter running `_check_release`."""
    code = "import sys; from edgeml_runtime.reload import _check_release; sys.exit(_check_release(sys.argv[1:]))"
    return [sys.executable, "-c", code, str(release), json.dumps(options)]


def _check_release(argv: List[str]) -> int:
    """In the child: load the release and smoke-test it; exit 0, or 2 with the reason on stderr."""
    release, options = Path(argv[0]), json.loads(argv[1])
    try:
        smoke_test(Predictor.from_bundle(release, **options))
    except EdgeMLError as error:
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - reported to the parent as one line
        print(f"error: {type(error).__name__}: {first_line(error)}", file=sys.stderr)
        return 2
    return 0


class ReloadingPredictor:
    """A Predictor that follows `<deployment>/current`. Same `predict`; `version` says who answers.

    `isolate` (default) first loads and runs a new release in a child process, so that a model that
    crashes the backend is refused instead of taking the service down with it."""

    def __init__(self, deployment, *, poll_seconds: float = 1.0, top_k: int = 3, artifact: Optional[str] = None,
                 backend: Optional[str] = None, threads: Optional[int] = None, on_event: Optional[Event] = None,
                 watch: bool = True, isolate: bool = True, task: Optional[str] = None, output: Optional[str] = None):
        self.deployment = Path(deployment)
        if not is_deployment(self.deployment):
            raise ModelLoadError(f"{self.deployment} has no 'current' link; hot reload follows a deployment "
                                 "directory made by edgeml deploy (current -> releases/<version>)")
        self.poll_seconds = poll_seconds
        self.isolate = isolate
        self._options = {"top_k": top_k, "artifact": artifact, "backend": backend, "threads": threads,
                         "task": task, "output": output}  # task/output: as Predictor's (serve --task/--output)
        self._on_event = on_event or _log_event
        self._check_lock = threading.Lock()  # one reload at a time; predict never takes it
        self.release = current_release(self.deployment)
        self._predictor = self._load(self.release)
        smoke_test(self._predictor)
        self.reloads = 0
        self.refused = 0
        self.last_error: Optional[str] = None
        self._refused_release: Optional[Path] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if watch:
            self.start()

    # -- serving ------------------------------------------------------------------------------------

    @property
    def predictor(self) -> Predictor:
        return self._predictor

    @property
    def version(self) -> str:
        return self._predictor.version

    def predict(self, sample: Any, *, top_k: Optional[int] = None):
        return self._predictor.predict(sample, top_k=top_k)  # one read of the reference: one model per call

    def describe(self) -> dict:
        return {**self._predictor.describe(), "reload": self.stats()}

    def stats(self) -> dict:
        return {"deployment": str(self.deployment), "release": self.release.name, "reloads": self.reloads,
                "refused": self.refused, "last_error": self.last_error, "poll_seconds": self.poll_seconds,
                "watching": bool(self._thread and self._thread.is_alive()), "isolated_checks": self.isolate}

    # -- watching -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="edgeml-reload", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def __enter__(self) -> ReloadingPredictor:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def check_now(self, *, retry_refused: bool = False) -> bool:
        """Look at `current` once; load, test and swap in a new release. True when a swap happened."""
        with self._check_lock:
            target = Path(os.path.realpath(self.deployment / formats.CURRENT_LINK))
            if target == self.release or (target == self._refused_release and not retry_refused):
                return False
            started = time.perf_counter()
            try:
                if not target.is_dir():
                    raise ModelLoadError(f"release {target} does not exist (dangling 'current' link)")
                if self.isolate:
                    check_in_child(target, self._options)
                candidate = self._load(target)
                smoke_test(candidate, self._predictor)
            except EdgeMLError as error:
                self._refuse(target, str(error))
                return False
            except Exception as error:  # noqa: BLE001 - a broken release must never stop the service
                self._refuse(target, f"{type(error).__name__}: {error}")
                return False
            previous = self._predictor.version
            self.release, self._refused_release, self.last_error = target, None, None
            self.reloads += 1  # counted before the swap: whoever sees the new version sees the count too
            self._predictor = candidate  # the swap: a single reference assignment, atomic for readers
            self._on_event({"event": "reloaded", "version": candidate.version, "previous": previous,
                            "release": target.name, "load_ms": round((time.perf_counter() - started) * 1e3, 1)})
            return True

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check_now()
            except Exception as error:  # noqa: BLE001 - keep watching whatever happens
                self._on_event({"event": "watch-error", "error": f"{type(error).__name__}: {error}"})

    def _load(self, release: Path) -> Predictor:
        if not release.is_dir():
            raise ModelLoadError(f"release {release} does not exist (dangling 'current' link)")
        return Predictor.from_bundle(release, **self._options)

    def _refuse(self, target: Path, message: str) -> None:
        self.refused += 1
        self._refused_release = target
        self.last_error = f"release {target.name} refused: {message}"
        self._on_event({"event": "refused", "release": target.name, "error": message,
                        "serving": self._predictor.version})


def _log_event(event: dict) -> None:
    details = " ".join(f"{key}={value}" for key, value in event.items() if key != "event")
    print(f"edgeml_runtime reload: {event['event']} {details}", file=sys.stderr, flush=True)
