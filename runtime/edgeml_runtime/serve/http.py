"""HTTP JSON endpoint on the standard library's ThreadingHTTPServer (no extra dependency on the device).

    POST /predict   body: JSON array or {"inputs": ..., "top_k": k, "id": any}  -> 200 prediction(s)
    GET  /health    version, counters, recent latency percentiles, model facts    -> 200

Errors are JSON {"error": message, "status": code}: 400 malformed JSON, 404 unknown path, 405 wrong
method, 411 no Content-Length, 413 body over the limit (refused before reading it), 422 input that
does not fit the model, 500 model failure.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, Tuple

from edgeml_runtime.errors import EdgeMLError
from edgeml_runtime.serve.service import PredictionService, RequestError, dumps, error_body

__all__ = ["DEFAULT_MAX_BODY_BYTES", "PredictionHTTPServer", "make_server"]

DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: far above one sensor sample or a small image batch


class PredictionHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a hung client must not keep the process alive at shutdown
    allow_reuse_address = True  # restart on the same port right after a crash (systemd Restart=)

    def __init__(self, address: Tuple[str, int], service: PredictionService, *, max_body_bytes: int,
                 verbose: bool = False):
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.verbose = verbose
        super().__init__(address, PredictionHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class PredictionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients in a loop reuse one connection
    server_version = "edgeml_runtime"
    # Headers and body leave in one write (the buffer is flushed after each request), and without
    # Nagle's delay: otherwise a keep-alive client waits ~40 ms for each answer (delayed ACK).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?")[0] == "/health":
            self._send(200, self.server.service.health())
        elif self.path.split("?")[0] == "/predict":
            self._fail(405, "use POST /predict with a JSON body", allow="POST")
        else:
            self._fail(404, f"no endpoint {self.path}; use POST /predict or GET /health")

    def do_POST(self) -> None:  # noqa: N802
        if self.path.split("?")[0] != "/predict":
            # The body is left unread, so this connection cannot carry another request: close it.
            self._fail(404, f"no endpoint {self.path}; use POST /predict or GET /health", close=True)
            return
        body = self._read_body()
        if body is None:
            return
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
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self._fail(411, "missing Content-Length header; send the JSON body with its length", close=True)
            return None
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            self._fail(400, f"bad Content-Length {length_header!r}", close=True)
            return None
        if length > limit:
            # Not read: answering and closing keeps a huge upload from being buffered at all.
            self.server.service.count_error(413)
            self._fail(413, f"body of {length} bytes exceeds the limit of {limit} bytes; send fewer samples per "
                            "request or start the server with a larger --max-body-bytes", close=True)
            return None
        return self.rfile.read(length)

    def _fail(self, status: int, message: str, *, close: bool = False, allow: Optional[str] = None) -> None:
        headers = {"Allow": allow} if allow else {}
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


def make_server(service: PredictionService, host: str = "127.0.0.1", port: int = 8080, *,
                max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, verbose: bool = False) -> PredictionHTTPServer:
    """Bind (port 0 picks a free one; see `.url`). Call serve_forever() in the thread of your choice."""
    try:
        return PredictionHTTPServer((host, port), service, max_body_bytes=max_body_bytes, verbose=verbose)
    except OSError as error:
        raise EdgeMLError(f"cannot listen on {host}:{port}: {error.strerror or error}; pick another --http "
                          "address or stop what uses it") from None
