"""The MQTT bridge against a real Mosquitto on 127.0.0.1, run as `python -m edgeml_runtime serve` in a
subprocess: answers, malformed messages, a broker restart mid-stream, and the missing-extra error."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
from edgeml_runtime import Predictor

from tests.serving.serving_support import MqttPeer
from tests.support.local_servers import ServeProcess

pytestmark = pytest.mark.mqtt
SAMPLES = np.random.default_rng(5).normal(size=(10, 8)).round(4).tolist()


def start_bridge(deployment, broker_port, tmp_path, topic):
    serve = ServeProcess([deployment, "--mqtt", f"127.0.0.1:{broker_port}", "--topic-in", f"{topic}/in",
                          "--topic-out", f"{topic}/out", "--http", "127.0.0.1:0", "--max-body-bytes", "2000"],
                         tmp_path)
    serve.wait_for(f"listening on '{topic}/in'")
    return serve


def health(serve):
    with urllib.request.urlopen(serve.http_url() + "/health", timeout=10) as response:
        return json.load(response)


def test_answers_errors_and_keeps_going(deployment, broker, tmp_path):
    expected = Predictor.from_bundle(deployment)
    serve = start_bridge(deployment, broker.port, tmp_path, "answers")
    peer = MqttPeer(broker.port, "answers/out")
    try:
        for index, sample in enumerate(SAMPLES):
            peer.publish("answers/in", {"inputs": sample, "id": index})
        peer.publish("answers/in", b"{not json")
        peer.publish("answers/in", {"inputs": [1, 2, 3], "id": "short"})
        peer.publish("answers/in", {"inputs": SAMPLES * 5, "id": "huge"})  # ~2.5 KB, over the 2000 B limit
        peer.publish("answers/in", {"inputs": SAMPLES[0], "id": "after"})
        peer.wait(lambda: len(peer.answers) == len(SAMPLES) + 4)
        for index, sample in enumerate(SAMPLES):
            answer = peer.answer_for(index)
            assert answer["version"] == "v1" and answer["latency_ms"] > 0
            assert answer["prediction"]["label"] == expected.predict(sample).label
        malformed = next(a for a in peer.answers if a.get("status") == 400)
        assert "malformed JSON" in malformed["error"] and malformed["malformed"] == 1
        assert malformed["topic"] == "answers/in"
        short = next(a for a in peer.answers if a.get("status") == 422)
        assert "expected one sample shaped (8,), got shape (3,)" in short["error"]
        huge = next(a for a in peer.answers if a.get("status") == 413)
        assert "exceeds the limit of 2000 bytes" in huge["error"]
        assert peer.answer_for("after")["prediction"]["label"] == expected.predict(SAMPLES[0]).label
        state = health(serve)
        assert (state["requests"], state["errors"], state["malformed"]) == (len(SAMPLES) + 1, 3, 1)
        assert state["mqtt"]["connected"] is True and state["mqtt"]["connects"] == 1
    finally:
        peer.close()
        assert serve.stop() == 0, serve.stderr


def test_reconnects_after_the_broker_restarts_mid_stream(deployment, own_broker, tmp_path):
    """A publisher streams every 20 ms while the broker restarts. Messages sent while the broker is
    down are lost (no persistence), but every message sent after both sides reconnected is answered."""
    serve = start_bridge(deployment, own_broker.port, tmp_path, "stream")
    peer = MqttPeer(own_broker.port, "stream/out")
    sent, stop = [], threading.Event()

    def publish_stream():
        index = 0
        while not stop.is_set():
            peer.publish("stream/in", {"inputs": SAMPLES[index % len(SAMPLES)], "id": index})
            sent.append(index)
            index += 1
            time.sleep(0.02)

    publisher = threading.Thread(target=publish_stream)
    publisher.start()
    try:
        peer.wait(lambda: len(peer.answers) >= 10)
        own_broker.restart()
        peer.wait(lambda: peer.subscribed >= 2 and health(serve)["mqtt"]["connects"] >= 2
                  and health(serve)["mqtt"]["connected"])
        first_after = len(sent)
        peer.wait(lambda: len(sent) >= first_after + 25)
        stop.set()
        publisher.join()
        last = sent[-1]
        peer.wait(lambda: peer.answer_for(last) is not None)
        missing = [i for i in range(first_after, last + 1) if peer.answer_for(i) is None]
        assert missing == []
        assert serve.process.poll() is None
        assert "disconnected from" in serve.stderr and serve.stderr.count("connected to 127.0.0.1") >= 2
    finally:
        stop.set()
        publisher.join()
        peer.close()
        assert serve.stop() == 0, serve.stderr


def test_waits_for_a_broker_that_is_not_up_yet(deployment, own_broker, tmp_path):
    """On boot the service may start before the broker: it keeps trying instead of exiting."""
    own_broker.stop()
    serve = ServeProcess([deployment, "--mqtt", f"127.0.0.1:{own_broker.port}", "--topic-in", "boot/in",
                          "--topic-out", "boot/out"], tmp_path)
    try:
        serve.wait_for("model version v1 ready")
        time.sleep(1.5)
        assert serve.process.poll() is None and "listening on" not in serve.stderr
        own_broker.start()
        serve.wait_for("listening on 'boot/in'")
        peer = MqttPeer(own_broker.port, "boot/out")
        peer.publish("boot/in", {"inputs": SAMPLES[0], "id": 1})
        peer.wait(lambda: peer.answer_for(1) is not None)
        peer.close()
    finally:
        assert serve.stop() == 0, serve.stderr


def test_missing_paho_gives_the_pip_command(deployment, monkeypatch, capsys):
    from edgeml_runtime.cli import main

    for name in ("paho", "paho.mqtt", "paho.mqtt.client"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import paho.mqtt.client` fail, as if absent
    code = main(["serve", str(deployment), "--mqtt", "127.0.0.1:1", "--topic-in", "a", "--topic-out", "b"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == ("error: MQTT serving needs paho-mqtt, which is not installed: "
                       "pip install 'edgeml-runtime[mqtt]'")
    assert "Traceback" not in "\n".join(err)
