"""Hostile HTTP clients against `serve`'s endpoint (in-process, on 127.0.0.1, with short timeouts so that
the suite stays fast): slowloris, connection floods past the cap, deeply nested JSON, conflicting or
malformed headers, garbage request lines, oversize bodies, and the bearer token. After each attack an
honest client is still answered, and the server's threads stay bounded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time

import pytest
from edgeml_runtime import Predictor
from edgeml_runtime.serve.http import make_server
from edgeml_runtime.serve.service import PredictionService

from tests.serving.serving_support import write_labels
from tests.support.cli import runtime_cli
from tests.support.models import MLP_FP32, MLP_ONNX, backend_installed

SAMPLE = [0.25] * 8
TOKEN = "7f3c1d9a8b2e4f60a1b2c3d4e5f60718"
IDLE = 1.0  # the servers' --idle-timeout here: real deployments keep the 30 s default


def tiny_model():
    for model in (MLP_FP32, MLP_ONNX):
        if backend_installed(model):
            return model
    pytest.skip("no backend installed")


@pytest.fixture
def predictor(tmp_path):
    model = tiny_model()
    shutil.copyfile(model, tmp_path / model.name)
    write_labels(tmp_path)
    return Predictor.from_model(tmp_path / model.name)


@pytest.fixture
def serve(predictor):
    started = []

    def start(**options):
        service = PredictionService(predictor)
        server = make_server(service, "127.0.0.1", 0, idle_timeout=options.pop("idle_timeout", IDLE), **options)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        started.append((server, service))
        return server

    yield start
    for server, service in started:
        server.shutdown()
        server.server_close()
        service.close()


def exchange(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes or goes quiet; the raw answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except (ConnectionResetError, socket.timeout):
        pass
    return b"".join(chunks)


def parse(raw: bytes):
    """(status, JSON body) of one raw HTTP answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n")[0].split()
    assert status_line and status_line[0].startswith(b"HTTP/1."), raw[:200]
    return int(status_line[1]), json.loads(body)


def post(port: int, body, *, headers: str = "", keep=False) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = (f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n{headers}"
               f"Connection: close\r\n\r\n").encode() + data
    return exchange(port, request)


def honest(port: int) -> int:
    return parse(post(port, SAMPLE))[0]


def handler_threads() -> int:
    return sum(1 for thread in threading.enumerate() if "process_request_thread" in thread.name)


def test_slowloris_connections_are_closed_after_the_idle_timeout(serve):
    """20 clients each dribble a header byte every 0.2 s: a per-read timeout alone would keep them forever."""
    server = serve()
    port = server.server_address[1]
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    for sock in clients:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
    started, closed = time.monotonic(), set()
    while len(closed) < len(clients) and time.monotonic() - started < 4 * IDLE + 3:
        for index, sock in enumerate(clients):
            if index in closed:
                continue
            try:
                sock.sendall(b"X")
            except OSError:
                closed.add(index)
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    for sock in clients:
        sock.close()
    assert len(closed) == len(clients), f"only {len(closed)} of {len(clients)} slow clients closed"
    assert elapsed < 3 * IDLE + 2
    assert server.stats()["closed_idle"] >= len(clients)
    assert honest(port) == 200


def test_past_the_cap_connections_get_503_and_health_still_answers(serve):
    server = serve(max_connections=4)
    port = server.server_address[1]
    holders = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]  # silent: hold slots
    try:
        time.sleep(0.2)
        status, answer = parse(post(port, SAMPLE))
        assert status == 503 and "busy" in answer["error"] and "--max-connections" in answer["error"]
        raw = exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, health = parse(raw)
        assert status == 200 and health["status"] == "ok" and health["http"]["refused_busy"] >= 1
        assert handler_threads() <= 4
    finally:
        for sock in holders:
            sock.close()
    time.sleep(0.3)
    assert honest(port) == 200


def test_a_flood_of_connections_keeps_the_thread_count_bounded(serve):
    """300 connections at once against a cap of 16: every one is answered or closed, threads stay <= 16."""
    server = serve(max_connections=16)
    port = server.server_address[1]
    before = threading.active_count()
    flood = []
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        flood.append(sock)
    peak = threading.active_count()
    time.sleep(0.1)
    peak = max(peak, threading.active_count())
    ended = 0
    for sock in flood:
        sock.sendall(b"GET /predict HTTP/1.1\r\nHost: x\r\n\r\n")
    for sock in flood:
        answer = read_all(sock)
        ended += 1
        assert answer == b"" or answer.startswith(b"HTTP/1.1 ")
        sock.close()
    assert ended == 300 and peak - before <= 16 + 2
    assert honest(port) == 200


@pytest.mark.parametrize("request_bytes, status, message", [
    (b"HELLO\r\n\r\n", 400, "Bad request"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40) + b"\r\n\r\n", 400, "Bad request"),  # TLS hello
    (b"GET / HTTP/9.9\r\n\r\n", 505, "Invalid HTTP version"),
    (b"BREW /predict HTTP/1.1\r\nHost: x\r\n\r\n", 501, "Unsupported method"),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, ""),
    (b"GET /health HTTP/1.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n", 431, "Too many headers"),
    (b"POST /predict HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 300\r\n\r\n[1]", 400, "2 Content-Length"),
    (b"POST /predict HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n[1]", 400, "2 Content-Length"),
    (b"POST /predict HTTP/1.1\r\nContent-Length: +3\r\n\r\n[1]", 400, "bad Content-Length"),
    (b"POST /predict HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n[1]", 400, "bad Content-Length"),
    (b"POST /predict HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n[1]", 400, "bad Content-Length"),
    (b"POST /predict HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 413, "exceeds the limit"),
])
def test_malformed_requests_get_a_json_error_with_a_status_line(serve, request_bytes, status, message):
    server = serve()
    got, answer = parse(exchange(server.server_address[1], request_bytes))
    assert (got, answer["status"]) == (status, status) and message in answer["error"], answer
    assert honest(server.server_address[1]) == 200


@pytest.mark.parametrize("depth", [50, 5_000, 200_000])
def test_deeply_nested_json_is_a_400_or_422_never_a_500(serve, depth):
    server = serve(max_body_bytes=4 << 20)
    port = server.server_address[1]
    for body in (b"[" * depth + b"]" * depth, b'{"inputs": ' + b'{"a": ' * depth + b"1" + b"}" * (depth + 1)):
        status, answer = parse(post(port, body))
        assert status in (400, 422), answer
    assert honest(server.server_address[1]) == 200


def test_a_body_that_never_arrives_is_dropped_after_the_idle_timeout(serve):
    server = serve()
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[1, 2")
        started = time.monotonic()
        assert read_all(sock) == b""  # closed without an answer (nothing to answer)
        assert time.monotonic() - started < 2 * IDLE + 2
    assert honest(server.server_address[1]) == 200


def test_an_oversize_body_is_refused_unread(serve):
    server = serve(max_body_bytes=1000)
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        started = time.monotonic()
        status, answer = parse(read_all(sock))
    assert status == 413 and time.monotonic() - started < 1.0


def test_a_bearer_token_guards_predictions(serve):
    server = serve(token=TOKEN)
    port = server.server_address[1]
    for headers in ("", "Authorization: Bearer wrong-token-wrong-token\r\n", f"Authorization: Basic {TOKEN}\r\n"):
        raw = post(port, SAMPLE, headers=headers)
        assert parse(raw)[0] == 401 and b"WWW-Authenticate: Bearer" in raw
    assert parse(post(port, SAMPLE, headers=f"Authorization: Bearer {TOKEN}\r\n"))[0] == 200
    assert parse(exchange(port, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")) == (200, {"status": "ok"})
    full = parse(exchange(port, f"GET /health HTTP/1.1\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}"
                                "\r\n\r\n".encode()))[1]
    assert full["requests"] == 1 and full["http"]["token_required"] is True and "model" in full


def test_the_token_file_must_be_private_and_non_trivial(tmp_path):
    model = tiny_model()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    os.chmod(token_file, 0o644)
    done = runtime_cli("serve", model, "--http", "127.0.0.1:0", "--token-file", token_file, check_exit=2)
    assert "chmod 600" in done.stderr and done.stderr.count("\n") == 1
    os.chmod(token_file, 0o600)
    token_file.write_text("short\n")
    done = runtime_cli("serve", model, "--http", "127.0.0.1:0", "--token-file", token_file, check_exit=2)
    assert "at least 16 printable characters" in done.stderr
    token_file.write_text(TOKEN + "\n")
    unit = runtime_cli("serve", model, "--http", "0.0.0.0:8080", "--token-file", token_file, "--idle-timeout", "10",
                       "--max-connections", "32", "--print-systemd-unit", check_exit=0).stdout
    assert f"--token-file {token_file}" in unit and "--idle-timeout 10.0" in unit and "--max-connections 32" in unit


def test_the_readme_examples_bind_loopback_or_carry_a_token():
    from tests.support.models import ROOT

    seen = 0
    for readme in (ROOT / "README.md", ROOT / "runtime" / "README.md"):
        for command in re.findall(r"serve [^`\n]*?--http\s+[^`]*?(?:`|\n\n|\n +(?=python))", readme.read_text()):
            address = command.split("--http", 1)[1].split()[0]
            seen += 1
            assert address.startswith(("127.0.0.1", "localhost", "[::1]")) or "--token-file" in command, command
    assert seen >= 3
