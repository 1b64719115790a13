"""MQTT bridge: predictions for JSON messages on one topic, published on another (paho-mqtt).

Optional part: `pip install 'edgeml-runtime[mqtt]'`. Each input message gets exactly one answer on
`topic_out`: the prediction (with "version" and "latency_ms") or {"error", "status", "malformed"}, so a
publisher waiting for its answer always gets one, and a bad message never stops the bridge. paho's
network thread reconnects after a broker restart (exponential back-off up to `max_reconnect_s`), and
the subscription is renewed on every connect because a restarted broker has forgotten it.
"""

from __future__ import annotations

import sys
import threading
import uuid
from typing import Optional

from edgeml_runtime.errors import EdgeMLError
from edgeml_runtime.serve.service import PredictionService, RequestError, dumps, error_body

__all__ = ["MQTT_INSTALL_HINT", "MqttBridge", "import_paho"]

MQTT_INSTALL_HINT = "pip install 'edgeml-runtime[mqtt]'"


def import_paho():
    """paho.mqtt.client (2.x), or an EdgeMLError that says how to install it."""
    try:
        import paho.mqtt.client as paho
    except ImportError:
        raise EdgeMLError(f"MQTT serving needs paho-mqtt, which is not installed: {MQTT_INSTALL_HINT}") from None
    if not hasattr(paho, "CallbackAPIVersion"):
        raise EdgeMLError(f"paho-mqtt {getattr(paho, '__version__', '< 2')} is too old; MQTT serving needs 2.0 or "
                          f"newer: {MQTT_INSTALL_HINT} --upgrade")
    return paho


class MqttBridge:
    def __init__(self, service: PredictionService, host: str, port: int, *, topic_in: str, topic_out: str,
                 topic_error: Optional[str] = None, qos: int = 1, client_id: Optional[str] = None,
                 keepalive: int = 15, max_reconnect_s: int = 5, max_message_bytes: int = 1 << 20,
                 verbose: bool = True):
        paho = import_paho()
        self.service = service
        self.host, self.port = host, port
        self.topic_in, self.topic_out = topic_in, topic_out
        self.topic_error = topic_error or topic_out
        self.qos = qos
        self.keepalive = keepalive
        self.max_message_bytes = max_message_bytes
        self.verbose = verbose
        self.connects = 0
        self.disconnects = 0
        self.connected = threading.Event()
        self._client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                   client_id=client_id or f"edgeml-{uuid.uuid4().hex[:10]}")
        self._client.reconnect_delay_set(min_delay=1, max_delay=max_reconnect_s)
        self._client.max_queued_messages_set(1000)  # answers made while the broker is away wait, bounded
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    def start(self) -> None:
        """Connect in the background; paho keeps retrying until the broker answers."""
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def stats(self) -> dict:
        return {"broker": f"{self.host}:{self.port}", "connected": self.connected.is_set(),
                "connects": self.connects, "disconnects": self.disconnects,
                "topic_in": self.topic_in, "topic_out": self.topic_out}

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._log(f"broker {self.host}:{self.port} refused the connection: {reason_code}")
            return
        client.subscribe(self.topic_in, qos=self.qos)
        self.connects += 1
        self._log(f"connected to {self.host}:{self.port}")

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(code.is_failure for code in reason_codes):
            self._log(f"the broker refused the subscription to '{self.topic_in}': {reason_codes}")
            return
        self.connected.set()  # from here on, input messages reach us
        self._log(f"listening on '{self.topic_in}', answering on '{self.topic_out}'")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.disconnects += 1
        self._log(f"disconnected from {self.host}:{self.port} ({reason_code}); reconnecting")

    def _on_message(self, client, userdata, message) -> None:
        try:
            if len(message.payload) > self.max_message_bytes:
                self.service.count_error(413)
                raise RequestError(413, f"message of {len(message.payload)} bytes exceeds the limit of "
                                        f"{self.max_message_bytes} bytes; send fewer samples per message")
            client.publish(self.topic_out, dumps(self.service.handle(message.payload)), qos=self.qos)
        except RequestError as error:  # already counted by the service (or above)
            problem = error_body(error.status, str(error), topic=message.topic,
                                 malformed=self.service.counts["malformed"])
            client.publish(self.topic_error, dumps(problem), qos=self.qos)
        except Exception as error:  # noqa: BLE001 - paho would drop the connection; answer and go on
            self.service.count_error(500)
            client.publish(self.topic_error, dumps(error_body(500, f"internal error: {error}")), qos=self.qos)

    def _log(self, text: str) -> None:
        if self.verbose:
            print(f"edgeml_runtime mqtt: {text}", file=sys.stderr, flush=True)
