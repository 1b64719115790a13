"""`python -m edgeml_runtime serve SOURCE --http HOST:PORT [--mqtt HOST:PORT --topic-in T --topic-out T]`.

SOURCE is a model file, a conversion manifest, a bundle, or a deployment directory; a deployment
directory is followed for new releases (hot reload) unless --no-reload. Runs until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional, Tuple

from edgeml_runtime.errors import EdgeMLError

__all__ = ["add_parser", "cmd_serve", "parse_address"]


def add_parser(commands) -> None:
    parser = commands.add_parser("serve", help="serve predictions over HTTP and/or MQTT",
                                 description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="model file, manifest.json, bundle or deployment directory")
    parser.add_argument("--http", metavar="HOST:PORT", help="serve POST /predict and GET /health (port 0: any)")
    parser.add_argument("--mqtt", metavar="HOST:PORT", help="MQTT broker to bridge (needs edgeml-runtime[mqtt])")
    parser.add_argument("--topic-in", help="MQTT topic with input messages (JSON)")
    parser.add_argument("--topic-out", help="MQTT topic for predictions (and errors, unless --topic-error)")
    parser.add_argument("--topic-error", help="MQTT topic for error answers (default: --topic-out)")
    parser.add_argument("--max-body-bytes", type=int, help="largest HTTP body or MQTT message (default 1 MiB)")
    parser.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                        help="HTTP: time a connection has to send a whole request, and may stay idle (default 30)")
    parser.add_argument("--max-connections", type=int, metavar="N",
                        help="HTTP: open connections served at once; beyond, 503 (GET /health still answers; "
                             "default 64)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="HTTP: require 'Authorization: Bearer TOKEN' for /predict, TOKEN being this file's "
                             "content (for anything but 127.0.0.1; chmod 600 the file)")
    parser.add_argument("--top-k", type=int, default=3, help="classes listed per prediction (default 3)")
    parser.add_argument("--artifact", help="which artifact of a manifest: file name, quantization or format "
                                           "(default: its measured recommendation, see `edgeml select`)")
    parser.add_argument("--task", choices=("classification", "regression", "arrays"),
                        help="how to read the outputs, instead of labels.json or the guess (without labels.json: "
                             "class scores only when they look like probabilities, else arrays)")
    parser.add_argument("--output", metavar="NAME", help="the output to read (default: labels.json's, else all)")
    parser.add_argument("--backend", help="litert, tflite_runtime or onnxruntime (default: first installed)")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: all cores)")
    parser.add_argument("--workers", type=int, help="prediction threads (default: cores, at most 4)")
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for a new release")
    parser.add_argument("--no-reload", action="store_true", help="do not follow a deployment's 'current' link")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request on stderr")
    parser.add_argument("--print-systemd-unit", action="store_true",
                        help="print a systemd unit running this command (same options) and exit")
    parser.add_argument("--unit-user", help="with --print-systemd-unit: the User= to run as")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    parser.set_defaults(handler=cmd_serve)


def parse_address(text: str, option: str, default_port: int) -> Tuple[str, int]:
    """'HOST:PORT', ':PORT', 'PORT', 'HOST' or '[v6]:PORT' -> (host, port); host defaults to 127.0.0.1."""
    host, port = text, str(default_port)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or port
    elif text.isdigit():
        host, port = "", text
    elif ":" in text:
        host, port = text.rsplit(":", 1)
    if not port.isdigit() or int(port) > 65535:
        raise EdgeMLError(f"{option} {text!r}: the port must be a number 0-65535, e.g. {option} 127.0.0.1:8080")
    return host or "127.0.0.1", int(port)


def cmd_serve(args) -> int:
    _check_options(args)
    if args.print_systemd_unit:
        print(systemd_unit(args), end="")
        return 0
    predictor = _open_predictor(args)
    _print_model_choice(predictor)
    from edgeml_runtime.serve.service import PredictionService

    service = PredictionService(predictor, workers=args.workers)
    stop = threading.Event()
    parts = []
    try:
        if args.http:
            parts.append(_start_http(service, args))
        if args.mqtt:
            parts.append(_start_mqtt(service, args))
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        print(f"edgeml_runtime serve: model version {predictor.version} ready", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for part in reversed(parts):
            part()
        service.close()
        if hasattr(predictor, "close"):
            predictor.close()
    print("edgeml_runtime serve: stopped", file=sys.stderr, flush=True)
    return 0


def _check_options(args) -> None:
    if not args.http and not args.mqtt:
        raise EdgeMLError("nothing to serve on: pass --http HOST:PORT and/or --mqtt HOST:PORT")
    if args.mqtt and not (args.topic_in and args.topic_out):
        raise EdgeMLError("--mqtt needs --topic-in and --topic-out (e.g. --topic-in sensors/x --topic-out preds/x)")
    if args.http:
        parse_address(args.http, "--http", 8080)
    if args.mqtt:
        parse_address(args.mqtt, "--mqtt", 1883)
    if args.max_body_bytes is not None and args.max_body_bytes < 1:
        raise EdgeMLError("--max-body-bytes must be at least 1")
    if args.idle_timeout is not None and not args.idle_timeout > 0:
        raise EdgeMLError("--idle-timeout must be above 0 seconds")
    if args.max_connections is not None and args.max_connections < 1:
        raise EdgeMLError("--max-connections must be at least 1")
    if args.token_file is not None:
        read_token(args.token_file)
    if args.workers is not None and args.workers < 1:
        raise EdgeMLError("--workers must be at least 1")
    if args.top_k < 1:
        raise EdgeMLError("--top-k must be at least 1")
    if args.poll_seconds <= 0:
        raise EdgeMLError("--poll-seconds must be above 0")
    if not os.path.lexists(args.source):
        raise EdgeMLError(f"not found: {args.source}; pass a model file, manifest.json, bundle or deployment directory")


def _open_predictor(args):
    from edgeml_runtime.locate import is_deployment

    options = {"top_k": args.top_k, "artifact": args.artifact, "backend": args.backend, "threads": args.threads,
               "task": args.task, "output": args.output}
    if is_deployment(Path(args.source)) and not args.no_reload:
        from edgeml_runtime.reload import ReloadingPredictor

        return ReloadingPredictor(args.source, poll_seconds=args.poll_seconds, **options)
    from edgeml_runtime.predictor import Predictor

    return Predictor.from_path(args.source, **options)


def _print_model_choice(predictor) -> None:
    """Which of a manifest's artifacts is served, and why when it is not the recommended one."""
    source = getattr(getattr(predictor, "predictor", predictor), "source", None)  # a ReloadingPredictor wraps one
    if source is None or source.kind == "model":
        return
    if source.note:
        print(f"edgeml_runtime serve: note: {source.note}", file=sys.stderr, flush=True)
    why = " (the manifest's measured recommendation)" if source.recommended else ""
    print(f"edgeml_runtime serve: serving {source.model.name}{why}", file=sys.stderr, flush=True)


def read_token(path) -> str:
    """The bearer token in `path`: one line of at least 16 characters, in a file only its owner can read."""
    try:
        mode = os.stat(path).st_mode
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise EdgeMLError(f"--token-file {path}: cannot read it ({reason})") from None
    if mode & 0o077:
        raise EdgeMLError(f"--token-file {path} can be read by other users (mode {mode & 0o777:o}); "
                          f"run: chmod 600 {path}")
    token = text.strip()
    if len(token) < 16 or any(char.isspace() or not char.isprintable() for char in token):
        raise EdgeMLError(f"--token-file {path} must hold one token of at least 16 printable characters and no "
                          "spaces; make one with: python3 -c 'import secrets; print(secrets.token_hex(32))' > FILE")
    return token


def _start_http(service, args):
    from edgeml_runtime.serve.http import (
        DEFAULT_IDLE_TIMEOUT,
        DEFAULT_MAX_BODY_BYTES,
        DEFAULT_MAX_CONNECTIONS,
        make_server,
    )

    host, port = parse_address(args.http, "--http", 8080)
    token = read_token(args.token_file) if args.token_file else None
    server = make_server(service, host, port, max_body_bytes=args.max_body_bytes or DEFAULT_MAX_BODY_BYTES,
                         verbose=args.verbose, idle_timeout=args.idle_timeout or DEFAULT_IDLE_TIMEOUT,
                         max_connections=args.max_connections or DEFAULT_MAX_CONNECTIONS, token=token)
    thread = threading.Thread(target=server.serve_forever, name="edgeml-http", daemon=True)
    thread.start()
    print(f"edgeml_runtime serve: http listening on {server.url}", file=sys.stderr, flush=True)
    if token is None and not _loopback(host):
        print(f"edgeml_runtime serve: warning: {host} is reachable from other machines and no --token-file is set: "
              "anyone who can reach it can use the model", file=sys.stderr, flush=True)

    def stop_http():
        server.shutdown()
        server.server_close()

    return stop_http


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _start_mqtt(service, args):
    from edgeml_runtime.serve.mqtt import MqttBridge

    host, port = parse_address(args.mqtt, "--mqtt", 1883)
    from edgeml_runtime.serve.http import DEFAULT_MAX_BODY_BYTES

    bridge = MqttBridge(service, host, port, topic_in=args.topic_in, topic_out=args.topic_out,
                        topic_error=args.topic_error, max_message_bytes=args.max_body_bytes or DEFAULT_MAX_BODY_BYTES)
    service.health_parts["mqtt"] = bridge.stats
    bridge.start()
    return bridge.stop


def systemd_unit(args) -> str:
    from edgeml_runtime.serve.systemd import deployment_unit, render_unit, service_python

    source = str(Path(args.source).absolute())
    python = service_python(source, sys.executable)
    if python != sys.executable:
        return deployment_unit(source, _serve_options(args), user=args.unit_user)
    return render_unit(python=python, serve_args=[source, *_serve_options(args)],
                       description=f"edgeml model service for {source}", user=args.unit_user,
                       working_directory=str(Path(source).parent if Path(source).is_file() else source))


def _serve_options(args) -> List[str]:
    """The command line options of this run, to repeat in the unit's ExecStart."""
    words: List[str] = []
    for option in ("http", "mqtt", "topic_in", "topic_out", "topic_error", "max_body_bytes", "idle_timeout",
                   "max_connections", "token_file", "artifact", "task", "output", "backend", "threads", "workers"):
        value: Optional[object] = getattr(args, option)
        if value is not None:
            if option == "token_file":
                value = str(Path(value).absolute())  # the unit runs in another working directory
            words += ["--" + option.replace("_", "-"), str(value)]
    if args.top_k != 3:
        words += ["--top-k", str(args.top_k)]
    if args.poll_seconds != 1.0:
        words += ["--poll-seconds", str(args.poll_seconds)]
    words += [flag for flag, on in (("--no-reload", args.no_reload), ("--verbose", args.verbose)) if on]
    return words
