"""What serving adds: a prediction over HTTP and over MQTT vs Predictor.predict in the app's own process.

Starts `python -m edgeml_runtime serve MODEL --http 127.0.0.1:0` on the tiny MLP and times, from this
process: in-process Predictor.predict on the same JSON-like sample (a list), HTTP round trips on one
keep-alive connection, and 8 client threads on their own connections (requests/s). When mosquitto and
paho-mqtt are installed it then bridges a throw-away Mosquitto on 127.0.0.1 (`serve --mqtt`) and times
publish-to-answer round trips twice: with Mosquitto's and paho's defaults, where Nagle's algorithm and
delayed ACKs add tens of ms per message, and with `set_tcp_nodelay true` in mosquitto.conf plus
TCP_NODELAY on the client's socket. Prints p50/p90 per request and the ratios to the in-process call
(in-process and HTTP in interleaved rounds; MQTT against the in-process median).
Run: python -m benchmarks.serving_overhead [--model tflite|onnx] [--requests 1000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import edgeml_runtime as er

from benchmarks.common import interleaved, median_ratio, print_header
from tests.support.local_servers import Broker, ServeProcess, ToolMissing  # shared with the tests
from tests.support.models import TINY

SAMPLE = [0.1, -0.2, 0.3, 0.05, 0.7, -0.4, 0.2, 0.0]
ROUNDS = 5


def percentiles(seconds):
    ordered = sorted(seconds)
    return ordered[len(ordered) // 2] * 1e3, ordered[int(len(ordered) * 0.9)] * 1e3  # ms


def in_process(predictor, requests: int):
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        predictor.predict(SAMPLE)
        times.append(time.perf_counter() - started)
    return times


def http_round_trips(port: int, requests: int):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = json.dumps({"inputs": SAMPLE}).encode()
    headers = {"Content-Type": "application/json"}
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        connection.request("POST", "/predict", body, headers)
        response = connection.getresponse()
        answer = response.read()
        times.append(time.perf_counter() - started)
        if response.status != 200:
            sys.exit(f"HTTP {response.status}: {answer[:300]!r}")
    connection.close()
    return times


def http_throughput(port: int, clients: int, requests_each: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(lambda _: http_round_trips(port, requests_each), range(clients)))
    return clients * requests_each / (time.perf_counter() - started)


def mqtt_round_trips(broker_port: int, requests: int, *, no_delay: bool):
    import paho.mqtt.client as paho

    answered, subscribed = threading.Event(), threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="edgeml-bench")
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda *_: answered.set()
    if no_delay:
        client.on_socket_open = lambda _client, _userdata, sock: sock.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect("127.0.0.1", broker_port)
    client.subscribe("bench/out", qos=1)
    client.loop_start()
    subscribed.wait(10)
    times = []
    for index in range(requests):
        answered.clear()
        started = time.perf_counter()
        client.publish("bench/in", json.dumps({"inputs": SAMPLE, "id": index}), qos=1)
        if not answered.wait(10):
            sys.exit("no MQTT answer within 10 s")
        times.append(time.perf_counter() - started)
    client.loop_stop()
    client.disconnect()
    return times


def report(name, times, ratio=None):
    p50, p90 = percentiles(times)
    print(f"  {name:<34} p50 {p50:7.3f} ms   p90 {p90:7.3f} ms   {'' if ratio is None else f'{ratio:7.1f}x'}")


def p50_per_round(rounds):
    return [percentiles(times)[0] for times in rounds]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(TINY), default="onnx")
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    print_header("What serving adds: one prediction over HTTP and MQTT vs Predictor.predict in-process")
    model = TINY[args.model]
    with tempfile.TemporaryDirectory(prefix="edgeml-serve-bench-") as scratch:
        workdir = Path(scratch)
        server = ServeProcess([model, "--threads", "1", "--http", "127.0.0.1:0"], workdir)
        port = urlsplit(server.http_url()).port
        try:
            http_round_trips(port, 50)  # warm-up: connection set-up and the first runs
            predictor = er.Predictor.from_model(model, threads=1)
            each = max(20, args.requests // ROUNDS)
            measured = interleaved({"in-process": lambda: in_process(predictor, each),
                                    "http": lambda: http_round_trips(port, each)}, ROUNDS)
            base_p50 = p50_per_round(measured["in-process"])
            print(f"tiny MLP ({args.model}), one sample (a list of 8 numbers) per request, 1 model thread; "
                  f"{ROUNDS} rounds of {each} requests; ratio: median of per-round p50 ratios")
            report("Predictor.predict in-process", sum(measured["in-process"], []))
            report("HTTP POST /predict, keep-alive", sum(measured["http"], []),
                   median_ratio(base_p50, p50_per_round(measured["http"])))
            rates = [http_throughput(port, clients=8, requests_each=args.requests // 4) for _ in range(3)]
            rate = statistics.median(rates)
            print(f"  HTTP, 8 clients: {rate:,.0f} requests/s ({1e3 / rate:.3f} ms per request), median of 3")
        finally:
            server.stop()
        try:
            import paho.mqtt.client  # noqa: F401
        except ImportError:
            print("  MQTT: skipped (pip install paho-mqtt)")
            return
        for no_delay, name in ((False, "defaults"), (True, "TCP_NODELAY")):
            try:
                broker = Broker(workdir, no_delay=no_delay)
            except ToolMissing as missing:
                print(f"  MQTT: skipped ({missing})")
                return
            broker.start()
            bridge = ServeProcess([model, "--threads", "1", "--mqtt", f"127.0.0.1:{broker.port}", "--topic-in",
                                   "bench/in", "--topic-out", "bench/out"], workdir)
            try:
                bridge.wait_for("listening on 'bench/in'")
                times = mqtt_round_trips(broker.port, max(20, args.requests // 10), no_delay=no_delay)
                report(f"MQTT round trip, {name}", times, percentiles(times)[0] / statistics.median(base_p50))
            finally:
                bridge.stop()
                broker.stop()


if __name__ == "__main__":
    main()
