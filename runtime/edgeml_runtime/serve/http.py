"""HTTP JSON endpoint on the standard library's ThreadingHTTPServer (no extra dependency on the device).

    POST /predict   body: JSON array or {"inputs": ..., "top_k": k, "id": any}  -> 200 prediction(s)
    GET  /health    version, counters, recent latency percentiles, model facts    -> 200

Errors are JSON {"error": message, "status": code}: 400 malformed JSON, a malformed request line or
conflicting Content-Length headers, 401 a missing or wrong bearer token (with `token`), 404 unknown
path, 405 wrong method, 411 no Content-Length, 413 body over the limit (refused before reading it),
422 input that does not fit the model, 500 model failure, 503 too many connections.

A server that sheds load instead of piling it up:
- `idle_timeout`: a connection has that long to send a whole request (line, headers and body), and may
  sit idle that long between requests; then it is closed. Dribbling a byte at a time does not extend it
  (slowloris): a watchdog closes connections past their deadline, whatever they are doing.
- `max_connections`: each connection has a thread; beyond the cap, new connections get no thread. One
  extra thread answers them (a few hundred at a time, each given a second or two to send its request):
  `GET /health` is answered as usual, anything else gets 503 with Retry-After, and the connection closes.
- `token`: when set, POST /predict needs `Authorization: Bearer TOKEN`, and GET /health without it
  says only {"status": "ok"} (enough for a liveness probe, nothing about the model).
"""

from __future__ import annotations

import hmac
import selectors
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Optional, Tuple

from edgeml_runtime.errors import EdgeMLError
from edgeml_runtime.serve.service import PredictionService, RequestError, dumps, error_body

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "PredictionHTTPServer",
    "make_server",
]

DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: far above one sensor sample or a small image batch
DEFAULT_IDLE_TIMEOUT = 30.0  # seconds: a slow client on a poor link still sends a sample well within it
DEFAULT_MAX_CONNECTIONS = 64  # threads; a device app has a handful of clients, a gateway a few dozen
OVERFLOW_CONNECTIONS = 256  # connections beyond the cap waiting for their 503 (or /health) at once
OVERFLOW_SECONDS = 2.0  # how long one of them may take to send its request line and headers
OVERFLOW_HEAD_BYTES = 8192  # and how much of it is read


class PredictionHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a hung client must not keep the process alive at shutdown
    allow_reuse_address = True  # restart on the same port right after a crash (systemd Restart=)
    request_queue_size = 128  # the listen backlog: connections the kernel holds until accepted

    def __init__(self, address: Tuple[str, int], service: PredictionService, *, max_body_bytes: int,
                 verbose: bool = False, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, token: Optional[str] = None):
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.verbose = verbose
        self.idle_timeout = float(idle_timeout)
        self.max_connections = int(max_connections)
        self.token = token.encode() if token else None
        self.refused = 0  # connections answered 503 because of the cap
        self.closed_idle = 0  # connections closed by the watchdog
        self._lock = threading.Lock()
        self._deadlines: Dict[socket.socket, Optional[float]] = {}  # open connection -> deadline (None: working)
        self._stop = threading.Event()
        self._overflow: Optional[_Overflow] = None
        super().__init__(address, PredictionHandler)  # binds; on failure it calls server_close()
        self._overflow = _Overflow(self)
        self._watchdog = threading.Thread(target=self._watch, name="edgeml-http-watchdog", daemon=True)
        self._watchdog.start()
        service.health_parts["http"] = self.stats

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def stats(self) -> dict:
        with self._lock:
            open_now = len(self._deadlines)
        return {"connections": open_now, "max_connections": self.max_connections, "refused_busy": self.refused,
                "closed_idle": self.closed_idle, "idle_timeout_s": self.idle_timeout,
                "token_required": self.token is not None}

    # -- connections ---------------------------------------------------------------------------------

    def process_request(self, request, client_address) -> None:
        with self._lock:
            admitted = len(self._deadlines) < self.max_connections
            if admitted:
                self._deadlines[request] = time.monotonic() + self.idle_timeout
        if not admitted:
            self._overflow.add(request)
            return
        try:
            super().process_request(request, client_address)  # a thread for this connection
        except BaseException:
            with self._lock:
                self._deadlines.pop(request, None)
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._deadlines.pop(request, None)

    def expect_request(self, connection) -> None:
        """The connection may now send a request: it has `idle_timeout` to send all of it."""
        with self._lock:
            if connection in self._deadlines:
                self._deadlines[connection] = time.monotonic() + self.idle_timeout

    def working(self, connection) -> None:
        """The request is in: the watchdog leaves the connection alone while it is answered."""
        with self._lock:
            if connection in self._deadlines:
                self._deadlines[connection] = None

    def _watch(self) -> None:
        interval = min(1.0, max(0.05, self.idle_timeout / 4))
        while not self._stop.wait(interval):
            now = time.monotonic()
            with self._lock:
                late = [conn for conn, deadline in self._deadlines.items() if deadline is not None and deadline < now]
                for connection in late:
                    self._deadlines[connection] = None  # closed once
                self.closed_idle += len(late)
            for connection in late:
                _shut(connection)  # the handler's read returns at once and its thread ends

    def handle_error(self, request, client_address) -> None:
        # Resets, broken pipes and timeouts are a client's business: no traceback on the service's stderr.
        if self.verbose:
            error = sys.exc_info()[1]
            sys.stderr.write(f"{client_address[0]} connection ended: {type(error).__name__}: {error}\n")

    def server_close(self) -> None:
        self._stop.set()
        super().server_close()
        if self._overflow is not None:
            self._overflow.close()
        with self._lock:
            connections = list(self._deadlines)
        for connection in connections:
            _shut(connection)

    # -- answers that do not need a connection's thread ----------------------------------------------

    def authorized(self, header: Optional[str]) -> bool:
        if self.token is None:
            return True
        scheme, _, given = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token)

    def health(self, authorized: bool) -> dict:
        return self.service.health() if authorized else {"status": "ok"}

    def busy_message(self) -> str:
        return (f"the server is busy: {self.max_connections} connections are open (its --max-connections); "
                "retry in a moment")


class PredictionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients in a loop reuse one connection
    server_version = "edgeml_runtime"
    # Headers and body leave in one write (the buffer is flushed after each request), and without
    # Nagle's delay: otherwise a keep-alive client waits ~40 ms for each answer (delayed ACK).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # no single read or write blocks longer than this
        super().setup()

    def handle_one_request(self) -> None:
        self.server.expect_request(self.connection)
        super().handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?")[0]
        if path == "/health":
            self._send(200, self.server.health(self.server.authorized(self.headers.get("Authorization"))))
        elif path == "/predict":
            self._fail(405, "use POST /predict with a JSON body", allow="POST")
        else:
            self._fail(404, f"no endpoint {self.path}; use POST /predict or GET /health")

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?")[0] != "/predict":
            # The body is left unread, so this connection cannot carry another request: close it.
            self._fail(404, f"no endpoint {self.path}; use POST /predict or GET /health", close=True)
            return
        if not self.server.authorized(self.headers.get("Authorization")):
            self.server.service.count_error(401)
            self._fail(401, "missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN' with "
                            "the token of the server's --token-file", close=True,
                       headers={"WWW-Authenticate": "Bearer"})
            return
        body = self._read_body()
        if body is None:
            return
        self.server.working(self.connection)
        try:
            self._send(200, self.server.service.handle(body))
        except RequestError as error:
            self._fail(error.status, str(error))

    def do_PUT(self) -> None:  # noqa: N802
        self._fail(405, "use POST /predict or GET /health", allow="GET, POST", close=True)

    do_DELETE = do_PATCH = do_PUT  # noqa: N815

    def _read_body(self) -> Optional[bytes]:
        limit = self.server.max_body_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._fail(411, "chunked bodies are not accepted; send a Content-Length header", close=True)
            return None
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            self._fail(411, "missing Content-Length header; send the JSON body with its length", close=True)
            return None
        if len(lengths) > 1:
            # Two lengths: a proxy in front may have read the body with the other one (request smuggling).
            self.server.service.count_error(400)
            self._fail(400, f"{len(lengths)} Content-Length headers ({', '.join(map(repr, lengths))}); send one",
                       close=True)
            return None
        length_header = lengths[0].strip()
        if not length_header.isdigit() or not length_header.isascii():
            self.server.service.count_error(400)
            self._fail(400, f"bad Content-Length {lengths[0]!r}; send the body's size in bytes", close=True)
            return None
        length = int(length_header)
        if length > limit:
            # Not read: answering and closing keeps a huge upload from being buffered at all.
            self.server.service.count_error(413)
            self._fail(413, f"body of {length} bytes exceeds the limit of {limit} bytes; send fewer samples per "
                            "request or start the server with a larger --max-body-bytes", close=True)
            return None
        body = self.rfile.read(length)
        if len(body) < length:  # the client went away (or the watchdog closed it) mid-body
            self.close_connection = True
            return None
        return body

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """http.server's own errors (a malformed request line, headers too long, an unknown method) as
        the same JSON as every other error, with a status line even for a request line it could not read."""
        if self.request_version == "HTTP/0.9" or not self.request_version:
            self.request_version = "HTTP/1.0"  # 0.9 answers have no status line; no client expects one
        self.server.service.count_error(code)
        reason = message or self.responses.get(code, ("error",))[0]
        self._fail(code, f"{reason}; send an HTTP/1.1 request such as POST /predict with a JSON body", close=True)

    def _fail(self, status: int, message: str, *, close: bool = False, allow: Optional[str] = None,
              headers: Optional[dict] = None) -> None:
        headers = dict(headers or {})
        if allow:
            headers["Allow"] = allow
        if close:
            self.close_connection = True
            headers["Connection"] = "close"
        self._send(status, error_body(status, message), headers)

    def _send(self, status: int, payload: dict, headers: Optional[dict] = None) -> None:
        data = dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - overriding the stdlib signature
        if self.server.verbose:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class _Overflow:
    """Connections beyond the cap, answered by one thread without blocking on any of them: each gets
    OVERFLOW_SECONDS to send its request head; GET /health is answered, anything else gets 503."""

    def __init__(self, server: PredictionHTTPServer):
        self.server = server
        self._selector = selectors.DefaultSelector()
        self._incoming: list = []
        self._lock = threading.Lock()
        self._waiting: Dict[socket.socket, Tuple[float, bytearray]] = {}
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="edgeml-http-overflow", daemon=True)
        self._thread.start()

    def add(self, connection: socket.socket) -> None:
        with self._lock:
            crowded = len(self._incoming) + len(self._waiting) >= OVERFLOW_CONNECTIONS or self._closed
            if not crowded:
                self._incoming.append(connection)
        if crowded:  # not even a place in the queue: 503 without reading anything
            self._answer(connection, b"")
            return
        try:
            self._wake_write.send(b"\0")
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
        try:
            self._wake_write.send(b"\0")
        except OSError:
            pass
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._lock:
                incoming, self._incoming = self._incoming, []
                closed = self._closed
            if closed:
                break
            for connection in incoming:
                connection.setblocking(False)
                self._waiting[connection] = (time.monotonic() + OVERFLOW_SECONDS, bytearray())
                self._selector.register(connection, selectors.EVENT_READ)
            for key, _ in self._selector.select(timeout=0.25):
                if key.fileobj is self._wake_read:
                    try:
                        self._wake_read.recv(4096)
                    except OSError:
                        pass
                    continue
                self._read(key.fileobj)
            now = time.monotonic()
            for connection in [c for c, (deadline, _) in self._waiting.items() if deadline < now]:
                self._finish(connection)
        for connection in list(self._waiting) + incoming:
            _shut(connection)
            connection.close()
        self._selector.close()
        self._wake_read.close()
        self._wake_write.close()

    def _read(self, connection: socket.socket) -> None:
        head = self._waiting[connection][1]
        try:
            data = connection.recv(OVERFLOW_HEAD_BYTES - len(head))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        head += data
        if not data or b"\r\n\r\n" in head or b"\n\n" in head or len(head) >= OVERFLOW_HEAD_BYTES:
            self._finish(connection)

    def _finish(self, connection: socket.socket) -> None:
        _, head = self._waiting.pop(connection)
        self._selector.unregister(connection)
        self._answer(connection, bytes(head))

    def _answer(self, connection: socket.socket, head: bytes) -> None:
        server = self.server
        request_line, _, rest = head.partition(b"\n")
        words = request_line.split()
        if len(words) >= 2 and words[0] == b"GET" and words[1].split(b"?")[0] == b"/health":
            authorization = next((line.split(b":", 1)[1].strip().decode("latin-1") for line in rest.split(b"\n")
                                  if line.lower().startswith(b"authorization:")), None)
            status, payload, extra = 200, server.health(server.authorized(authorization)), b""
        else:
            with server._lock:
                server.refused += 1
            server.service.count_error(503)
            status, payload, extra = 503, error_body(503, server.busy_message()), b"Retry-After: 1\r\n"
        body = dumps(payload)
        reason = b"OK" if status == 200 else b"Service Unavailable"
        response = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%sConnection: close"
                    b"\r\n\r\n" % (status, reason, len(body), extra)) + body
        try:
            connection.setblocking(False)
            connection.send(response)  # a few hundred bytes: the socket's send buffer takes them at once
        except OSError:
            pass
        _shut(connection)
        connection.close()


def _shut(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def make_server(service: PredictionService, host: str = "127.0.0.1", port: int = 8080, *,
                max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, verbose: bool = False,
                idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                token: Optional[str] = None) -> PredictionHTTPServer:
    """Bind (port 0 picks a free one; see `.url`). Call serve_forever() in the thread of your choice."""
    try:
        return PredictionHTTPServer((host, port), service, max_body_bytes=max_body_bytes, verbose=verbose,
                                    idle_timeout=idle_timeout, max_connections=max_connections, token=token)
    except OSError as error:
        raise EdgeMLError(f"cannot listen on {host}:{port}: {error.strerror or error}; pick another --http "
                          "address or stop what uses it") from None
