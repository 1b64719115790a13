"""The apps in examples/ run as a user would run them, against real servers and a real broker."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest
from edgeml_runtime import Predictor

from tests.support.local_servers import ServeProcess
from tests.support.models import ROOT

EXAMPLES = ROOT / "examples"


def run_example(name, *args, timeout=60):
    return subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_sensor_loop_classifies_every_reading(deployment):
    result = run_example("sensor_loop.py", deployment, "--steps", "5", "--interval", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    labels = {"idle", "walk", "run", "fall"}
    for step, line in enumerate(lines):
        match = re.fullmatch(rf"step {step}: (\w+) \((0\.\d\d|1\.00)\) by model v1 in [\d.]+ ms", line)
        assert match and match.group(1) in labels, line


def test_http_client_talks_to_the_server(deployment, tmp_path):
    serve = ServeProcess([deployment, "--http", "127.0.0.1:0"], tmp_path)
    try:
        result = run_example("http_client.py", serve.http_url(), "--samples", "2")
    finally:
        serve.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "server up, model version v1, 0 requests served"
    expected = Predictor.from_bundle(deployment)
    for index in range(2):
        label = expected.predict([math.sin(index + channel) for channel in range(8)]).label
        assert re.fullmatch(rf"sample {index}: {label} \(version v1, [\d.]+ ms\)", lines[1 + index]), lines
    assert lines[3].startswith("batch of 2: [")
    assert lines[4].startswith("a wrong request is answered with 422: invalid input: input 'features'")


@pytest.mark.mqtt
def test_mqtt_publisher_and_subscriber_pair(deployment, broker, tmp_path):
    serve = ServeProcess([deployment, "--mqtt", f"127.0.0.1:{broker.port}", "--topic-in", "ex/in",
                          "--topic-out", "ex/out"], tmp_path)
    subscriber = None
    try:
        serve.wait_for("listening on 'ex/in'")
        subscriber = subprocess.Popen([sys.executable, str(EXAMPLES / "mqtt_subscriber.py"), "--broker",
                                       f"127.0.0.1:{broker.port}", "--topic", "ex/out", "--count", "6",
                                       "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert subscriber.stdout.readline().strip() == "ready"
        published = run_example("mqtt_publisher.py", "--broker", f"127.0.0.1:{broker.port}", "--topic", "ex/in",
                                "--count", "6", "--interval", "0.01")
        assert published.returncode == 0, published.stderr
        assert published.stdout.splitlines() == [f"sent reading {i}" for i in range(6)]
        out, err = subscriber.communicate(timeout=40)
    finally:
        if subscriber and subscriber.poll() is None:
            subscriber.kill()
        serve.stop()
    assert subscriber.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 6
    ids = sorted(int(re.match(r"reading (\d+): (idle|walk|run|fall) \(model v1, [\d.]+ ms\)$", line).group(1))
                 for line in lines)
    assert ids == list(range(6))
