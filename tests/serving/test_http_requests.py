"""The HTTP endpoint's exact answers to each kind of request (status, message, headers, and whether the
connection stays open), with raw requests on a socket so that what the server sends is what is checked. A
keep-alive client depends on the server closing exactly when it left a body unread; mutation testing
(tests/mutation.py) showed which of these details only a test like this pins down."""

from __future__ import annotations

import json
import shutil
import socket
import threading

import pytest
from edgeml_runtime import Predictor
from edgeml_runtime.errors import EdgeMLError
from edgeml_runtime.serve.http import make_server
from edgeml_runtime.serve.service import PredictionService

from tests.serving.serving_support import write_labels
from tests.support.marks import require_backend_for
from tests.support.models import MLP_FP32

SAMPLE = json.dumps([0.25] * 8).encode()
TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
def serve(tmp_path):
    require_backend_for(MLP_FP32)
    shutil.copyfile(MLP_FP32, tmp_path / MLP_FP32.name)
    write_labels(tmp_path)
    started = []

    def start(**options):
        service = PredictionService(Predictor.from_model(tmp_path / MLP_FP32.name))
        server = make_server(service, "127.0.0.1", 0, **options)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        started.append((server, service))
        return server.server_address[1]

    yield start
    for server, service in started:
        server.shutdown()
        server.server_close()
        service.close()


class Answer:
    def __init__(self, raw: bytes):
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip()] = value.strip()  # as the server spelled them
        self.body = json.loads(body[:int(self.headers["Content-Length"])])


def exchange(port: int, request: bytes):
    """Send one request; return (the answer, whether the server then closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection without an answer (got {data!r})"
            data += chunk
        answer = Answer(data + _rest(sock, data))
        sock.settimeout(0.5)
        try:
            closed = sock.recv(1) == b""
        except socket.timeout:
            closed = False
        return answer, closed


def _rest(sock, data: bytes) -> bytes:
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    rest = b""
    while len(body) + len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of its answer"
        rest += chunk
    return rest


def post(path: bytes, body: bytes = SAMPLE, extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n%s" % (path, extra, len(body), body)


def test_every_answer_is_json_with_its_length(serve):
    port = serve()
    for request in (post(b"/predict"), b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", post(b"/nope")):
        answer, _ = exchange(port, request)
        assert answer.headers["Content-Type"] == "application/json"


def test_queries_are_ignored_in_the_path(serve):
    port = serve()
    answer, closed = exchange(port, post(b"/predict?verbose=1"))
    assert answer.status == 200 and "prediction" in answer.body and not closed
    answer, _ = exchange(port, b"GET /health?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.status == 200 and answer.body["status"] == "ok" and "requests" in answer.body


def test_wrong_paths_and_methods_word_for_word(serve):
    port = serve()
    answer, closed = exchange(port, b"GET /predict?x HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (answer.status, answer.body["error"], answer.headers["Allow"]) == (
        405, "use POST /predict with a JSON body", "POST")
    assert not closed  # nothing was left unread
    answer, closed = exchange(port, post(b"/nope"))
    assert (answer.status, answer.body["error"]) == (404, "no endpoint /nope; use POST /predict or GET /health")
    assert answer.headers["Connection"] == "close" and closed  # its body was not read
    answer, closed = exchange(port, b"PUT /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]")
    assert (answer.status, answer.body["error"], answer.headers["Allow"]) == (
        405, "use POST /predict or GET /health", "GET, POST")
    assert answer.headers["Connection"] == "close" and closed


def test_body_framing_refusals_word_for_word_and_they_close(serve):
    port = serve(max_body_bytes=100)
    cases = [
        (b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1]\r\n0\r\n\r\n", 411,
         "chunked bodies are not accepted; send a Content-Length header"),
        (b"POST /predict HTTP/1.1\r\nHost: x\r\n\r\n", 411,
         "missing Content-Length header; send the JSON body with its length"),
        (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n[1]", 400,
         "2 Content-Length headers ('3', '4'); send one"),
        (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\n[1]", 400,
         "bad Content-Length '3x'; send the body's size in bytes"),
        (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413,
         "body of 101 bytes exceeds the limit of 100 bytes; send fewer samples per request or start the server "
         "with a larger --max-body-bytes"),
    ]
    for request, status, message in cases:
        answer, closed = exchange(port, request)
        assert (answer.status, answer.body) == (status, {"error": message, "status": status})
        assert answer.headers["Connection"] == "close" and closed, message


def test_bearer_tokens_case_and_spacing(serve):
    port = serve(token=TOKEN)
    for header in (f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}", f"Bearer  {TOKEN} "):
        answer, _ = exchange(port, post(b"/predict", extra=f"Authorization: {header}\r\n".encode()))
        assert answer.status == 200, header
    for header in (f"Basic {TOKEN}", f"Bearer{TOKEN}", f"Token {TOKEN}", "Bearer", f"{TOKEN}"):
        answer, closed = exchange(port, post(b"/predict", extra=f"Authorization: {header}\r\n".encode()))
        assert answer.status == 401 and answer.headers["WWW-Authenticate"] == "Bearer" and closed, header
        assert answer.body["error"] == ("missing or wrong bearer token: send the header 'Authorization: Bearer "
                                        "TOKEN' with the token of the server's --token-file")


def test_the_server_reports_the_options_it_was_made_with_and_logs_nothing_by_default(serve, capfd):
    port = serve(idle_timeout=7.5, max_connections=9, token=TOKEN)
    answer, _ = exchange(port, f"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    assert answer.body["http"]["idle_timeout_s"] == 7.5 and answer.body["http"]["max_connections"] == 9
    assert answer.body["http"]["token_required"] is True
    assert capfd.readouterr().err == ""  # not verbose unless asked


def test_a_busy_port_is_one_clear_error():
    require_backend_for(MLP_FP32)
    service = PredictionService(Predictor.from_model(MLP_FP32))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(EdgeMLError) as caught:
            make_server(service, "127.0.0.1", port)
    service.close()
    assert str(caught.value) == (f"cannot listen on 127.0.0.1:{port}: Address already in use; pick another --http "
                                 "address or stop what uses it")


def _health(port: int) -> dict:
    return exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")[0].body


def test_malformed_requests_are_counted_as_malformed(serve):
    port = serve(max_body_bytes=100)
    for request in (b"POST /predict HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n[1]",
                    b"POST /predict HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
                    b"HELLO\r\n\r\n"):
        exchange(port, request)
    assert (_health(port)["errors"], _health(port)["malformed"]) == (3, 3)
    exchange(port, b"POST /predict HTTP/1.1\r\nContent-Length: 99999\r\n\r\n")  # too large: an error, not malformed
    assert (_health(port)["errors"], _health(port)["malformed"]) == (4, 3)


def test_the_servers_own_refusals_carry_the_standard_reason(serve):
    from http import HTTPStatus

    port = serve()
    answer, closed = exchange(port, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")
    assert answer.status == 414 and closed
    assert answer.body["error"] == (f"{HTTPStatus(414).phrase}; send an HTTP/1.1 request such as POST /predict with "
                                    "a JSON body")


def test_a_slow_prediction_is_not_cut_off_by_the_idle_timeout(tmp_path):
    """The idle timeout limits how long a client takes to send its request, not how long the model takes to
    answer it: a prediction slower than the timeout still gets its answer."""
    import time

    require_backend_for(MLP_FP32)
    shutil.copyfile(MLP_FP32, tmp_path / MLP_FP32.name)
    write_labels(tmp_path)
    predictor = Predictor.from_model(tmp_path / MLP_FP32.name)

    class Slow:
        version = predictor.version

        def predict(self, sample, top_k=None):
            time.sleep(1.5)
            return predictor.predict(sample, top_k=top_k)

        def describe(self):
            return predictor.describe()

    service = PredictionService(Slow())
    server = make_server(service, "127.0.0.1", 0, idle_timeout=0.3)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        answer, _ = exchange(server.server_address[1], post(b"/predict"))
        assert answer.status == 200 and "prediction" in answer.body
    finally:
        server.shutdown()
        server.server_close()
        service.close()
