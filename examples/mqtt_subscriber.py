"""Print the predictions `python -m edgeml_runtime serve ... --mqtt` publishes (needs paho-mqtt).

    python examples/mqtt_subscriber.py --broker 127.0.0.1:1883 --topic predictions/imu [--count 10]

Prints "ready" once subscribed, then one line per answer; exits after --count answers (0: never).
"""

from __future__ import annotations

import argparse
import json
import threading

import paho.mqtt.client as mqtt


def shown(prediction: dict) -> str:
    """A label, a value, or the names of the outputs: whatever the model answers."""
    if "label" in prediction:
        return str(prediction["label"])
    if "value" in prediction:
        return str(prediction["value"])
    return "outputs " + ", ".join(prediction["outputs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT")
    parser.add_argument("--topic", default="predictions/imu")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    args = parser.parse_args()
    host, port = args.broker.rsplit(":", 1)
    received, done = [], threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        client.subscribe(args.topic, qos=1)  # again after every reconnect: the broker may have restarted

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        print("ready", flush=True)

    def on_message(client, userdata, message):
        answer = json.loads(message.payload)
        if "error" in answer:
            print(f"error {answer['status']}: {answer['error']}", flush=True)
        else:
            print(f"reading {answer.get('id')}: {shown(answer['prediction'])} (model {answer['version']}, "
                  f"{answer['latency_ms']:.2f} ms)", flush=True)
        received.append(answer)
        if args.count and len(received) >= args.count:
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(host, int(port))
    client.loop_start()
    finished = done.wait(args.timeout or None)
    client.disconnect()
    client.loop_stop()
    raise SystemExit(0 if finished else f"only {len(received)} of {args.count} answers in {args.timeout} s")


if __name__ == "__main__":
    main()
