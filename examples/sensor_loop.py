"""A sensor loop on the device: read a sample, run it through edgeml_runtime.Predictor, act on the result.

    python examples/sensor_loop.py MODEL_OR_DIR [--steps 20] [--interval 0.1]

MODEL_OR_DIR is a model file, an `edgeml convert` directory, an unpacked bundle, or a deployment
directory (`current -> releases/<version>`), which is followed for new releases while the loop runs.
The sensor here is simulated: noisy sine waves shaped like the model's input (8 channels for an IMU
classifier, 640 values for an audio-frame autoencoder...); replace read_sensor() with yours.

What is printed follows what the model gives: a label and its score for a classifier, the value for a
regressor, the reconstruction error for an autoencoder (an output shaped like the input; a high error means
an unusual reading), and a short summary of each output otherwise.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
from edgeml_runtime import Predictor, ReloadingPredictor
from edgeml_runtime.locate import is_deployment


def read_sensor(step: int, rng: random.Random, shape) -> np.ndarray:
    """One reading shaped like one model input: sine waves along the last axis, one phase per channel, plus
    noise. A real app reads an IMU, an ADC, a microphone, a serial port..."""
    shape = tuple(1 if dim is None else dim for dim in shape)
    size = int(np.prod(shape)) if shape else 1
    phase = np.arange(size, dtype=np.float64).reshape(shape) if shape else np.zeros(())
    noise = np.array([rng.gauss(0, 0.1) for _ in range(size)]).reshape(shape)
    return (np.sin(step / 5 + phase) + noise).astype(np.float32)


def reading_for(predictor, step: int, rng: random.Random):
    """A reading for every input the model takes (one array, or a dict by input name)."""
    current = getattr(predictor, "predictor", predictor)  # a ReloadingPredictor: the release serving now
    inputs = current.model.inputs
    if len(inputs) == 1:
        return read_sensor(step, rng, inputs[0].shape[1:])
    return {spec.name: read_sensor(step, rng, spec.shape[1:]) for spec in inputs}


def describe(result, reading) -> str:
    """The prediction in a few words, whatever the model's task."""
    if result.label is not None:
        return f"{result.label} ({result.score:.2f})"
    if result.outputs is None:
        return f"value {_numbers(result.value)}"
    parts = []
    for name, value in result.outputs.items():
        if isinstance(reading, np.ndarray) and value.shape == reading.shape:
            parts.append(f"reconstruction error {float(np.mean((value - reading) ** 2)):.4f}")
        else:
            parts.append(f"{name} {_numbers(value)}")
    return ", ".join(parts)


def _numbers(value: np.ndarray, shown: int = 3) -> str:
    numbers = [round(float(number), 4) for number in value.ravel()[:shown]]
    return f"{numbers}{'...' if value.size > shown else ''}"


def open_predictor(source: str):
    if is_deployment(source):
        return ReloadingPredictor(source, poll_seconds=1.0)  # follows `edgeml deploy` switches
    return Predictor.from_path(source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="model file, manifest, bundle or deployment directory")
    parser.add_argument("--steps", type=int, default=20, help="readings to process (0: forever)")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between readings")
    args = parser.parse_args()

    predictor = open_predictor(args.source)
    rng = random.Random(0)
    step = 0
    while args.steps == 0 or step < args.steps:
        reading = reading_for(predictor, step, rng)
        started = time.perf_counter()
        result = predictor.predict(reading)
        took_ms = (time.perf_counter() - started) * 1000
        print(f"step {step}: {describe(result, reading)} by model {result.version} in {took_ms:.2f} ms")
        step += 1
        time.sleep(args.interval)
    if hasattr(predictor, "close"):
        predictor.close()


if __name__ == "__main__":
    main()
