"""Publish sensor readings to MQTT for `python -m edgeml_runtime serve ... --mqtt HOST:PORT
--topic-in sensors/imu --topic-out predictions/imu` to process (needs paho-mqtt).

    python examples/mqtt_publisher.py --broker 127.0.0.1:1883 --topic sensors/imu [--count 10]
                                      [--shape 8 | --model MODEL]

Each reading is shaped like one model input: --shape (comma-separated, default 8 channels), or the first
input of --model (read with edgeml_runtime, so the sensor side and the model cannot disagree).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import paho.mqtt.client as mqtt


def reading(dims, step: float):
    """Nested lists shaped `dims`: sine waves along the last axis."""
    if len(dims) == 1:
        return [round(math.sin(step + channel), 4) for channel in range(dims[0])]
    return [reading(dims[1:], step + index) for index in range(dims[0])]


def sample_shape(args) -> list:
    if args.model:
        import edgeml_runtime

        return [1 if dim is None else dim for dim in edgeml_runtime.load(args.model).inputs[0].shape[1:]]
    return [int(part) for part in args.shape.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT")
    parser.add_argument("--topic", default="sensors/imu")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--shape", default="8", help="one reading's shape, e.g. 8 or 640 or 12,10,3")
    parser.add_argument("--model", help="take the shape from this model's first input instead")
    args = parser.parse_args()
    host, port = args.broker.rsplit(":", 1)
    dims = sample_shape(args)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(host, int(port))
    client.loop_start()
    for index in range(args.count):
        # "id" comes back in the answer, so a reply can be matched to its reading.
        info = client.publish(args.topic, json.dumps({"inputs": reading(dims, index / 3), "id": index}), qos=1)
        info.wait_for_publish(timeout=10)
        print(f"sent reading {index}")
        time.sleep(args.interval)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
