"""Helpers for the serving tests: releases built from the committed tiny models (tests.support.models),
a started Mosquitto (tests.support.local_servers.Broker) or a skip, and an MQTT test client."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from tests.support.local_servers import Broker, ToolMissing, free_port
from tests.support.marks import unavailable
from tests.support.models import MLP_FP32

CLASSES = ["idle", "walk", "run", "fall"]
# A table the 8-input MLP could have been trained on: 6 numeric sensor columns + a 2-value category.
FEATURES = {
    "encoding": "edgeml.features/1",
    "columns": [
        *({"name": name, "kind": "numeric", "fill": 0.5} for name in ("ax", "ay", "az", "gx", "gy", "gz")),
        {"name": "mount", "kind": "categorical", "encoding": "one_hot", "categories": ["belt", "wrist"],
         "fill": "wrist"},
    ],
    "vector": ["ax", "ay", "az", "gx", "gy", "gz", "mount=belt", "mount=wrist"],
    "missing": "a missing value (None, NaN or empty text) is replaced by the column's 'fill'",
    "unknown_category": "a category not seen in training encodes as all zeros",
}


def labels_payload(classes=CLASSES, task="classification", features=FEATURES) -> dict:
    """labels.json as edgeml train writes it (edgeml/trainer/outputs.py labels_payload)."""
    payload = {
        "schema": "edgeml.labels/1", "task": task, "source": "sensors.csv", "target": "activity",
        "classes": list(classes) if task == "classification" else None,
        "inputs": [{"name": "features", "shape": [None, 8], "dtype": "float32"}],
        "outputs": [{"name": "output", "shape": [None, len(classes)], "dtype": "float32",
                     "meaning": "class probabilities (softmax) in the order of 'classes'"}],
        "preprocessing": {"outside_model": ["build the feature vector"], "in_model": [{"op": "normalize"}]},
    }
    if features is not None:
        payload["feature_names"] = features["vector"]
        payload["features"] = features
    return payload


def write_labels(directory: Path, **kwargs) -> Path:
    path = Path(directory) / "labels.json"
    path.write_text(json.dumps(labels_payload(**kwargs)))
    return path


def make_release(deployment: Path, version: str, model: Path = MLP_FP32, *, labels: bool = True,
                 damage: bool = False) -> Path:
    """releases/<version>/ laid out like an unpacked bundle: edgeml-bundle.json + models/."""
    release = Path(deployment) / "releases" / version
    (release / "models").mkdir(parents=True)
    target = release / "models" / model.name
    if damage:
        data = bytearray(model.read_bytes())
        data[len(data) // 2:] = b"\x00" * (len(data) - len(data) // 2)  # header intact, graph destroyed
        target.write_bytes(bytes(data))
    else:
        shutil.copyfile(model, target)
    if labels:
        write_labels(release / "models")
    fmt = "tflite" if model.suffix == ".tflite" else "onnx"
    manifest = {"schema": "edgeml.bundle/1", "name": "sensor", "version": version,
                "models": [{"path": f"models/{model.name}", "format": fmt}]}
    (release / "edgeml-bundle.json").write_text(json.dumps(manifest))
    return release


def switch(deployment: Path, version: str) -> None:
    """Point current at releases/<version> atomically (new link under a temporary name, then rename)."""
    temporary = Path(deployment) / f".current.{os.getpid()}.tmp"
    if temporary.is_symlink():
        temporary.unlink()
    temporary.symlink_to(Path("releases") / version)
    os.replace(temporary, Path(deployment) / "current")


def broker_or_skip(workdir: Path) -> Broker:
    """A started Mosquitto; skips the test when mosquitto or paho-mqtt (the runtime's `mqtt` extra) is
    missing (fails under CI, which installs both)."""
    try:
        import paho.mqtt.client  # noqa: F401  (the bridge and the test client need it)
    except ImportError:
        unavailable("paho-mqtt is not installed: pip install 'edgeml-runtime[mqtt]'")
    try:
        broker = Broker(workdir)
    except ToolMissing as missing:
        unavailable(str(missing))
    broker.start()
    return broker


class MqttPeer:
    """A test client that publishes inputs and collects answers; resubscribes after reconnecting."""

    def __init__(self, port: int, topic_out: str):
        import threading

        import paho.mqtt.client as paho

        self.topic_out = topic_out
        self.answers: list = []
        self.connects = 0
        self._lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-peer-{free_port()}")
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = 0
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        self.wait(lambda: self.subscribed >= 1)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe(self.topic_out, qos=1)
        with self._lock:
            self.connects += 1

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._lock:
            self.subscribed += 1

    def _on_message(self, client, userdata, message):
        with self._lock:
            self.answers.append(json.loads(message.payload))

    def publish(self, topic: str, payload) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=1)

    def answer_for(self, request_id):
        with self._lock:
            return next((a for a in self.answers if a.get("id") == request_id), None)

    @staticmethod
    def wait(condition, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met in time")
            time.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
