"""The HTTP endpoint, in-process on a free port: concurrent clients, hot reload under load, and every
kind of bad request answered with a 4xx JSON error while the server keeps serving."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest
from edgeml_runtime import Predictor, ReloadingPredictor
from edgeml_runtime.serve.http import make_server
from edgeml_runtime.serve.service import PredictionService

from tests.serving.serving_support import CLASSES, make_release, switch, write_labels
from tests.support.marks import require_backend_for
from tests.support.models import MLP_FP32, MLP_INT8

SAMPLES = np.random.default_rng(3).normal(size=(20, 8)).round(4).tolist()


class Client:
    """One keep-alive connection, as a client app in a loop would use."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, body, path="/predict"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        return self._answer()

    def get(self, path):
        self.connection.request("GET", path)
        return self._answer()

    def _answer(self):
        response = self.connection.getresponse()
        payload = json.loads(response.read())
        if response.getheader("Connection", "").lower() == "close":
            self.connection.close()
        return response.status, payload


@pytest.fixture
def serve():
    started = []

    def start(predictor, **options):
        service = PredictionService(predictor)
        server = make_server(service, "127.0.0.1", 0, **options)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        started.append((server, service))
        return server.server_address[1]

    yield start
    for server, service in started:
        server.shutdown()
        server.server_close()
        service.close()


@pytest.fixture
def classifier(tmp_path):
    import shutil

    require_backend_for(MLP_FP32)
    shutil.copyfile(MLP_FP32, tmp_path / MLP_FP32.name)
    write_labels(tmp_path)
    return Predictor.from_model(tmp_path / MLP_FP32.name)


def without_latency(payload: dict) -> dict:
    return {key: value for key, value in payload.items() if key != "latency_ms"}


def test_a_prediction_and_a_batch(serve, classifier):
    client = Client(serve(classifier))
    status, answer = client.post(SAMPLES[0])
    assert status == 200 and answer["version"] == classifier.version and answer["latency_ms"] > 0
    expected = classifier.predict(SAMPLES[0])
    assert answer["prediction"]["label"] == expected.label in CLASSES
    assert answer["prediction"]["score"] == pytest.approx(expected.score, rel=1e-6)  # float32 -> JSON float
    status, answer = client.post({"inputs": SAMPLES[:3], "top_k": 1, "id": "req-7"})
    assert status == 200 and answer["id"] == "req-7" and len(answer["predictions"]) == 3
    assert [len(p["top_k"]) for p in answer["predictions"]] == [1, 1, 1]
    row = {"ax": 0.1, "ay": 0.2, "az": 9.8, "gx": 0, "gy": 0, "gz": None, "mount": "wrist"}
    status, answer = client.post({"inputs": row})
    assert status == 200 and answer["prediction"]["label"] == classifier.predict(row).label


def test_eight_concurrent_clients_get_the_single_threaded_answers(serve, classifier):
    port = serve(classifier)
    single = Client(port)
    reference = [without_latency(single.post(sample)[1]) for sample in SAMPLES]
    failures, mismatches = [], []

    def client_loop(offset):
        client = Client(port)
        for index in range(500):
            which = (index + offset) % len(SAMPLES)
            try:
                status, answer = client.post(SAMPLES[which])
            except Exception as error:  # noqa: BLE001 - counted and asserted below
                failures.append(repr(error))
                client = Client(port)
                continue
            if status != 200:
                failures.append((status, answer))
            elif without_latency(answer) != reference[which]:
                mismatches.append((which, answer))

    threads = [threading.Thread(target=client_loop, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and mismatches == []
    status, health = single.get("/health")
    assert health["requests"] == 8 * 500 + len(SAMPLES) and health["errors"] == 0


def test_hot_reload_while_serving_under_load(serve, deployment):
    make_release(deployment, "v2", MLP_INT8)
    expected = {v: without_latency(Predictor.from_bundle(deployment / "releases" / v).predict(SAMPLES[0]).to_dict())
                for v in ("v1", "v2")}
    predictor = ReloadingPredictor(deployment, poll_seconds=0.01, on_event=lambda e: None)
    port = serve(predictor)
    answers, done = [], threading.Event()

    def client_loop():
        client = Client(port)
        while not done.is_set():
            answers.append(client.post(SAMPLES[0]))

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for version in ["v2", "v1"] * 3:
            switch(deployment, version)
            deadline = time.monotonic() + 10
            while predictor.version != version and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(0.05)
    finally:
        done.set()
        for thread in threads:
            thread.join()
        predictor.close()
    assert answers and all(status == 200 for status, _ in answers)
    assert {answer["version"] for _, answer in answers} == {"v1", "v2"}
    for _, answer in answers:  # the whole answer comes from the one version it names
        assert answer["prediction"] == expected[answer["version"]]


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"[1, 2, 3", 400, "malformed JSON (Expecting ',' delimiter"),
        (b"\xff\xfe garbage", 400, "not UTF-8"),
        (b'{"samples": [1]}', 400, "expected a JSON array or {\"inputs\": ...}, got an object without 'inputs'"),
        (b'"hello"', 400, "got a JSON str"),
        (b"[1, 2, 3]", 422, "expected one sample shaped (8,), got shape (3,)"),
        (b"[[1, 2], [3]]", 422, "rows of different lengths"),
        (b'{"inputs": [[[1, 2, 3, 4, 5, 6, 7, 8]]]}', 422, "or a batch shaped (None, 8) float32, got shape (1, 1, 8)"),
        (b'{"inputs": [1, 2, 3, 4, 5, 6, 7, "x"]}', 422, "expected numbers"),
        (b'{"inputs": [1, 2, 3, 4, 5, 6, 7, 8], "top_k": 0}', 400, "'top_k' must be a positive integer"),
        (b'{"inputs": {"ax": 1}}', 422, "missing column(s) ['ay', 'az'"),
    ],
)
def test_bad_requests_get_4xx_with_a_clear_message(serve, classifier, body, status, message):
    client = Client(serve(classifier))
    got_status, answer = client.post(body)
    assert (got_status, answer["status"]) == (status, status)
    assert message in answer["error"]
    assert client.post(SAMPLES[0])[0] == 200  # same connection, still serving


def test_oversized_bodies_are_refused_before_reading(serve, classifier):
    port = serve(classifier, max_body_bytes=1000)
    client = Client(port)
    status, answer = client.post({"inputs": SAMPLES * 3})  # ~2 KB of JSON
    assert status == 413 and "exceeds the limit of 1000 bytes" in answer["error"]
    assert "--max-body-bytes" in answer["error"]
    # A client announcing 1 GB gets its answer at once; nothing is read or buffered.
    raw = _raw_request(port, b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 413") or raw.startswith(b"HTTP/1.1 413")
    assert Client(port).post(SAMPLES[0])[0] == 200
    assert Client(port).get("/health")[1]["errors"] == 2


def test_missing_length_unknown_paths_and_methods(serve, classifier):
    port = serve(classifier)
    no_length = _raw_request(port, b"POST /predict HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b" 411 " in no_length.split(b"\r\n")[0] and b"missing Content-Length" in no_length
    chunked = _raw_request(port, b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"3\r\n[1]\r\n0\r\n\r\n")
    assert b" 411 " in chunked.split(b"\r\n")[0] and b"chunked bodies are not accepted" in chunked
    client = Client(port)
    assert client.get("/nope") == (404, {"error": "no endpoint /nope; use POST /predict or GET /health",
                                         "status": 404})
    assert client.get("/predict")[0] == 405
    assert client.post(SAMPLES[0], path="/health")[0] == 404  # closes: its body was not read
    client = Client(port)
    client.connection.request("PUT", "/predict", body=b"[]")
    response = client.connection.getresponse()
    assert response.status == 405 and response.getheader("Allow") == "GET, POST"
    response.read()


def test_health_reports_version_counts_and_latency(serve, classifier):
    client = Client(serve(classifier))
    for sample in SAMPLES[:5]:
        client.post(sample)
    client.post(b"nonsense")
    status, health = client.get("/health")
    assert status == 200 and health["status"] == "ok" and health["version"] == classifier.version
    assert (health["requests"], health["predictions"], health["errors"], health["malformed"]) == (5, 5, 1, 1)
    assert health["latency_ms"]["window"] == 5 and 0 < health["latency_ms"]["p50"] <= health["latency_ms"]["max"]
    assert health["model"]["classes"] == CLASSES and health["model"]["backend"].startswith("litert")


def _raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_an_unexpected_failure_is_a_500_answer_and_the_server_goes_on(serve, classifier):
    class Flaky:
        """Wraps the real predictor and fails on one marked sample (a bug inside the model code path)."""

        version = classifier.version

        def predict(self, sample, top_k=None):
            if sample == [13] * 8:
                raise RuntimeError("boom")
            return classifier.predict(sample, top_k=top_k)

        def describe(self):
            return classifier.describe()

    client = Client(serve(Flaky()))
    assert client.post([13] * 8) == (500, {"error": "internal error: RuntimeError: boom", "status": 500})
    assert client.post(SAMPLES[0])[0] == 200
    assert client.get("/health")[1]["errors"] == 1
