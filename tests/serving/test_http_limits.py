"""The HTTP body limit, exactly: a body of the limit's size is served, one byte more is refused (413), with a
real HTTP client against a served model. A loosened limit, or `>` turned into `>=`, fails here.

The bodies are one sample's JSON padded with spaces (JSON allows whitespace after the value) to the size wanted.
"""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import threading

import pytest
from edgeml_runtime import Predictor
from edgeml_runtime.serve.http import DEFAULT_MAX_BODY_BYTES, make_server
from edgeml_runtime.serve.service import PredictionService

from tests.serving.serving_support import write_labels
from tests.support.marks import require_backend_for
from tests.support.models import MLP_FP32

SAMPLE = json.dumps([0.1, -0.2, 0.3, 0.05, 0.7, -0.4, 0.2, 0.0]).encode()


def body_of(size: int) -> bytes:
    assert size >= len(SAMPLE)
    return SAMPLE + b" " * (size - len(SAMPLE))


@pytest.fixture
def server(tmp_path):
    """start(**options) -> port of a served tiny classifier; stopped after the test."""
    require_backend_for(MLP_FP32)
    shutil.copyfile(MLP_FP32, tmp_path / MLP_FP32.name)
    write_labels(tmp_path)
    started = []

    def start(**options) -> int:
        service = PredictionService(Predictor.from_model(tmp_path / MLP_FP32.name))
        httpd = make_server(service, "127.0.0.1", 0, **options)
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        started.append((httpd, service))
        return httpd.server_address[1]

    yield start
    for httpd, service in started:
        httpd.shutdown()
        httpd.server_close()
        service.close()


def post(connection: http.client.HTTPConnection, body: bytes):
    connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read()), response.getheader("Connection", "")


@pytest.mark.parametrize("limit", [100, 1000, 4096])
def test_a_body_of_exactly_the_limit_is_served_and_one_byte_more_is_refused(server, limit):
    port = server(max_body_bytes=limit)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    status, answer, _ = post(connection, body_of(limit))
    assert status == 200 and "prediction" in answer, answer
    status, answer, _ = post(connection, body_of(limit))  # same keep-alive connection: still served
    assert status == 200

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    status, answer, connection_header = post(connection, body_of(limit + 1))
    assert status == 413 and answer["status"] == 413
    assert f"body of {limit + 1} bytes exceeds the limit of {limit} bytes" in answer["error"]
    assert connection_header.lower() == "close"  # the unread body must not be taken for the next request

    health = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    health.request("GET", "/health")
    counters = json.loads(health.getresponse().read())
    assert (counters["requests"], counters["errors"]) == (2, 1)


def test_the_default_limit_is_one_mebibyte_to_the_byte(server):
    assert DEFAULT_MAX_BODY_BYTES == 1 << 20  # what --max-body-bytes documents ("default 1 MiB")
    port = server()
    status, answer, _ = post(http.client.HTTPConnection("127.0.0.1", port, timeout=30), body_of(1 << 20))
    assert status == 200, answer
    # One byte over: the answer comes before the body is read, so send the head alone (the server closes the
    # connection after its 413; a client still pushing a megabyte would get a broken pipe first).
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % ((1 << 20) + 1))
        answer = sock.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"body of 1048577 bytes exceeds the limit of 1048576 bytes" in answer
