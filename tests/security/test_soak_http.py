"""A short soak of `python -m edgeml_runtime serve`: thousands of requests (keep-alive and fresh
connections, predictions, batches, malformed bodies, health checks) against the real process, its
resident memory sampled as it goes. After a warm-up the RSS must stay flat: a slope of a few KiB per
thousand requests is allocator noise, a leak of even 100 bytes per request is 100 KiB per thousand.
"""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import time

import numpy as np
import pytest

from tests.serving.serving_support import write_labels
from tests.support.local_servers import ServeProcess
from tests.support.models import MLP_FP32, MLP_ONNX, backend_installed

REQUESTS = 8000
WARM_UP = 2000  # requests before the slope is measured (caches, thread stacks, the latency window)
SAMPLE_EVERY = 200
MAX_SECONDS = 120
MAX_SLOPE_KIB = 64.0  # per 1000 requests, after the warm-up


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_thousands_of_requests_leave_memory_flat(tmp_path):
    model = next((m for m in (MLP_FP32, MLP_ONNX) if backend_installed(m)), None)
    if model is None:
        pytest.skip("no backend installed")
    shutil.copyfile(model, tmp_path / model.name)
    write_labels(tmp_path)
    serve = ServeProcess([tmp_path / model.name, "--http", "127.0.0.1:0", "--max-connections", "16"], tmp_path)
    try:
        host, port = serve.http_url().removeprefix("http://").rsplit(":", 1)
        pid = serve.process.pid
        rng = np.random.default_rng(0)
        keep_alive = [http.client.HTTPConnection(host, int(port), timeout=10) for _ in range(4)]
        statuses, samples = {}, []
        started = time.monotonic()
        for number in range(REQUESTS):
            fresh = number % 20 == 0
            connection = http.client.HTTPConnection(host, int(port), timeout=10) if fresh else keep_alive[number % 4]
            if number % 100 == 0:
                connection.request("GET", "/health")
            elif number % 25 == 0:
                connection.request("POST", "/predict", body=b'{"inputs": [1, 2', headers={"Connection": "keep-alive"})
            else:
                batch = rng.normal(size=(1 + number % 8, 8)).round(3).tolist()
                connection.request("POST", "/predict", body=json.dumps({"inputs": batch, "id": number}).encode())
            response = connection.getresponse()
            response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if fresh:
                connection.close()
            if number % SAMPLE_EVERY == 0:
                samples.append((number, rss_kib(pid)))
            assert time.monotonic() - started < MAX_SECONDS, f"soak too slow: {number} requests"
        samples.append((REQUESTS, rss_kib(pid)))
        elapsed = time.monotonic() - started
        for connection in keep_alive:
            connection.close()
    finally:
        assert serve.stop() == 0
    measured = np.array([(n, kib) for n, kib in samples if n >= WARM_UP], dtype=np.float64)
    slope = float(np.polyfit(measured[:, 0] / 1000.0, measured[:, 1], 1)[0])  # KiB per 1000 requests
    summary = (f"soak: {REQUESTS} requests in {elapsed:.1f} s ({REQUESTS / elapsed:.0f}/s), statuses {statuses}, "
               f"RSS {samples[0][1]} -> {samples[-1][1]} KiB, slope after {WARM_UP}: {slope:+.1f} KiB/1000 requests")
    print(summary)
    assert set(statuses) == {200, 400} and statuses[400] == REQUESTS // 25 - REQUESTS // 100, summary
    assert slope < MAX_SLOPE_KIB, summary
