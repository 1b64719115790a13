"""Publish sensor readings to MQTT for `python -m edgeml_runtime serve ... --mqtt HOST:PORT
--topic-in sensors/imu --topic-out predictions/imu` to classify (needs paho-mqtt).

    python examples/mqtt_publisher.py --broker 127.0.0.1:1883 --topic sensors/imu [--count 10]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import paho.mqtt.client as mqtt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT")
    parser.add_argument("--topic", default="sensors/imu")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.05)
    args = parser.parse_args()
    host, port = args.broker.rsplit(":", 1)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(host, int(port))
    client.loop_start()
    for index in range(args.count):
        reading = [round(math.sin(index / 3 + channel), 4) for channel in range(8)]
        # "id" comes back in the answer, so a reply can be matched to its reading.
        info = client.publish(args.topic, json.dumps({"inputs": reading, "id": index}), qos=1)
        info.wait_for_publish(timeout=10)
        print(f"sent reading {index}")
        time.sleep(args.interval)
    client.disconnect()
    client.loop_stop()


if __name__ == "__main__":
    main()
