"""Hot reload: follow a deployment directory's `current` link and swap in new releases between calls.

`edgeml deploy` unpacks a release into `<dir>/releases/<version>/` and then switches `<dir>/current`
atomically. `ReloadingPredictor` polls that link from a background thread; on a change it loads the
new release there, smoke-tests it (runs it once, checks the outputs are finite and the inputs match
what callers already send) and only then replaces the serving predictor with one assignment. Each
`predict` reads that reference once, so a call runs entirely on one model and its result carries that
model's version. A release that fails is refused, reported, and the previous one keeps serving.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from edgeml_runtime import formats
from edgeml_runtime.errors import CheckFailed, EdgeMLError, ModelLoadError
from edgeml_runtime.locate import current_release, is_deployment
from edgeml_runtime.predictor import Predictor

__all__ = ["ReloadingPredictor", "smoke_test"]

Event = Callable[[dict], None]


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


class ReloadingPredictor:
    """A Predictor that follows `<deployment>/current`. Same `predict`; `version` says who answers."""

    def __init__(self, deployment, *, poll_seconds: float = 1.0, top_k: int = 3, artifact: Optional[str] = None,
                 backend: Optional[str] = None, threads: Optional[int] = None, on_event: Optional[Event] = None,
                 watch: bool = True):
        self.deployment = Path(deployment)
        if not is_deployment(self.deployment):
            raise ModelLoadError(f"{self.deployment} has no 'current' link; hot reload follows a deployment "
                                 "directory made by edgeml deploy (current -> releases/<version>)")
        self.poll_seconds = poll_seconds
        self._options = {"top_k": top_k, "artifact": artifact, "backend": backend, "threads": threads}
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
                "watching": bool(self._thread and self._thread.is_alive())}

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
                candidate = self._load(target)
                smoke_test(candidate, self._predictor)
            except EdgeMLError as error:
                self._refuse(target, str(error))
                return False
            except Exception as error:  # noqa: BLE001 - a broken release must never stop the service
                self._refuse(target, f"{type(error).__name__}: {error}")
                return False
            previous = self._predictor.version
            self._predictor = candidate  # the swap: a single reference assignment, atomic for readers
            self.release, self._refused_release, self.last_error = target, None, None
            self.reloads += 1
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
