"""The transport-neutral part of serving: JSON request -> prediction response, errors, statistics.

HTTP and MQTT both hand raw message bytes to `PredictionService.handle`; it returns the response dict or
raises `RequestError` carrying an HTTP-style status and a message that says what to send instead.

Request: a JSON array (one sample or a batch) or an object {"inputs": ..., "top_k": k, "id": any}.
Response: {"prediction": {...}} for one sample or {"predictions": [...]} for a batch, plus "version",
"latency_ms" and the request's "id" when it had one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

import numpy as np

from edgeml_runtime.errors import EdgeMLError, InputError, ModelRunError

__all__ = ["PredictionService", "RequestError"]

LATENCY_WINDOW = 1000  # recent requests kept for the percentiles in /health


class RequestError(EdgeMLError):
    """A request that cannot be answered; `status` is the HTTP status (4xx: the client's fault)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class PredictionService:
    """Wraps a Predictor or ReloadingPredictor; thread-safe.

    Predictions run on a fixed pool of `workers` threads, not on the server's per-connection threads:
    TFLite gives every calling thread its own interpreter, so a thread per request would build a new
    interpreter per request (0.5 ms for a tiny model, far more for a real one).
    """

    def __init__(self, predictor, *, workers: Optional[int] = None):
        self.predictor = predictor
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="edgeml-predict")
        self.started = time.time()
        self._lock = threading.Lock()
        self._latencies_ms: deque = deque(maxlen=LATENCY_WINDOW)
        self.counts = {"requests": 0, "predictions": 0, "errors": 0, "malformed": 0}
        self.health_parts = {}  # name -> callable returning a dict (e.g. the MQTT bridge's state)

    def handle(self, body: bytes) -> dict:
        """Parse, validate, predict (on the worker pool). Every outcome is counted."""
        return self._pool.submit(self._handle, body).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def _handle(self, body: bytes) -> dict:
        started = time.perf_counter()
        try:
            response = self._answer(parse_request(body))
        except RequestError as error:
            self.count_error(error.status)
            raise
        except Exception as error:  # noqa: BLE001 - a bug must still get an answer, not a dropped connection
            self.count_error(500)
            raise RequestError(500, f"internal error: {type(error).__name__}: {error}") from None
        latency_ms = (time.perf_counter() - started) * 1000.0
        response["latency_ms"] = round(latency_ms, 3)
        with self._lock:
            self.counts["requests"] += 1
            self.counts["predictions"] += len(response.get("predictions", (None,)))
            self._latencies_ms.append(latency_ms)
        return response

    def _answer(self, request: dict) -> dict:
        inputs, top_k = request["inputs"], request.get("top_k")
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise RequestError(400, f"'top_k' must be a positive integer, got {json.dumps(top_k)}")
        try:
            result = self.predictor.predict(inputs, top_k=top_k)
        except InputError as error:
            raise RequestError(422, f"invalid input: {error}") from None
        except ModelRunError as error:
            raise RequestError(500, f"the model failed: {error}") from None
        if isinstance(result, list):
            response = {"version": result[0].version if result else self.predictor.version,
                        "predictions": [p.to_dict() for p in result]}
        else:
            response = {"version": result.version, "prediction": result.to_dict()}
        if "id" in request:
            response["id"] = request["id"]
        return response

    def count_error(self, status: int) -> None:
        with self._lock:
            self.counts["errors"] += 1
            if status == 400:
                self.counts["malformed"] += 1

    def health(self) -> dict:
        with self._lock:
            counts = dict(self.counts)
            latencies = np.asarray(self._latencies_ms, dtype=np.float64)
        latency = None
        if latencies.size:
            p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
            latency = {"window": int(latencies.size), "p50": round(float(p50), 3), "p90": round(float(p90), 3),
                       "p99": round(float(p99), 3), "max": round(float(latencies.max()), 3)}
        return {"status": "ok", "version": self.predictor.version, "uptime_s": round(time.time() - self.started, 1),
                **counts, "latency_ms": latency, "model": self.predictor.describe(),
                **{name: part() for name, part in self.health_parts.items()}}


def parse_request(body: bytes) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"))  # decoded here: json.loads(bytes) guesses UTF-16/32 too
    except UnicodeDecodeError:
        raise RequestError(400, "malformed request: the body is not UTF-8 text; send JSON") from None
    except ValueError as error:
        raise RequestError(400, f"malformed JSON ({error}); send a JSON array of numbers or "
                                '{"inputs": [...]}') from None
    except RecursionError:
        raise RequestError(400, "malformed request: JSON nested too deeply; send a JSON array of numbers or "
                                '{"inputs": [...]}') from None
    if isinstance(payload, list):
        return {"inputs": payload}
    if isinstance(payload, dict) and "inputs" in payload:
        return payload
    got = "an object without 'inputs'" if isinstance(payload, dict) else f"a JSON {type(payload).__name__}"
    raise RequestError(400, f'expected a JSON array or {{"inputs": ...}}, got {got}')


def error_body(status: int, message: str, **extra: Any) -> dict:
    return {"error": message, "status": status, **extra}


def dumps(payload: dict) -> bytes:
    return json.dumps(payload).encode("utf-8")
