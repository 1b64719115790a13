"""A sensor loop on the device: read a sample, classify it with edgeml_runtime.Predictor, act on it.

    python examples/sensor_loop.py MODEL_OR_DIR [--steps 20] [--interval 0.1]

MODEL_OR_DIR is a model file, an `edgeml convert` directory, an unpacked bundle, or a deployment
directory (`current -> releases/<version>`), which is followed for new releases while the loop runs.
The sensor here is simulated (8 channels of noisy sine waves); replace read_sensor() with yours.
"""

from __future__ import annotations

import argparse
import math
import random
import time

from edgeml_runtime import Predictor, ReloadingPredictor
from edgeml_runtime.locate import is_deployment


def read_sensor(step: int, rng: random.Random) -> list:
    """One reading: 8 float channels. A real app reads an IMU, an ADC, a serial port..."""
    return [math.sin(step / 5 + channel) + rng.gauss(0, 0.1) for channel in range(8)]


def open_predictor(source: str):
    if is_deployment(source):
        return ReloadingPredictor(source, poll_seconds=1.0)  # follows `edgeml deploy` switches
    return Predictor.from_path(source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="model file, manifest, bundle or deployment directory")
    parser.add_argument("--steps", type=int, default=20, help="readings to classify (0: forever)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between readings")
    args = parser.parse_args()

    predictor = open_predictor(args.source)
    rng = random.Random(0)
    step = 0
    while args.steps == 0 or step < args.steps:
        started = time.perf_counter()
        result = predictor.predict(read_sensor(step, rng))
        took_ms = (time.perf_counter() - started) * 1000
        if result.label is not None:
            print(f"step {step}: {result.label} ({result.score:.2f}) by model {result.version} in {took_ms:.2f} ms")
        else:
            print(f"step {step}: value {result.value.tolist()} by model {result.version} in {took_ms:.2f} ms")
        step += 1
        time.sleep(args.interval)
    if hasattr(predictor, "close"):
        predictor.close()


if __name__ == "__main__":
    main()
