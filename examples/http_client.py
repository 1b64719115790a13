"""Call a model served by `python -m edgeml_runtime serve MODEL --http HOST:PORT`, from any app that
speaks HTTP (this one uses only Python's standard library).

    python examples/http_client.py http://127.0.0.1:8080 [--samples 3]

The readings are shaped from what the server says the model takes (GET /health: model.inputs), so the
same client talks to an 8-channel classifier, a 640-value autoencoder or a model with several inputs.
"""

from __future__ import annotations

import argparse
import json
import math
import urllib.error
import urllib.request


def post_json(url: str, payload) -> dict:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:  # 4xx/5xx carry a JSON body: {"error": ..., "status": ...}
        return json.load(error)


def reading(shape, step: int, extra: int = 0):
    """Nested lists shaped like one sample of an input (`shape` without the batch dimension; None -> 1):
    sine waves along the last axis. `extra` adds values to the last axis (a wrong request)."""
    dims = [1 if dim is None else dim for dim in shape]
    if not dims:
        return math.sin(step)
    if len(dims) == 1:
        return [round(math.sin(step + channel), 4) for channel in range(dims[0] + extra)]
    return [reading(dims[1:], step + index, extra) for index in range(dims[0])]


def sample(inputs, step: int, extra: int = 0):
    """One sample for the model: the array itself for one input, else an object by input name."""
    if len(inputs) == 1:
        return reading(inputs[0]["shape"][1:], step, extra)
    return {spec["name"]: reading(spec["shape"][1:], step, extra) for spec in inputs}


def shown(prediction: dict) -> str:
    """A label, a value, or each output's size: whatever the model answers."""
    if "label" in prediction:
        return str(prediction["label"])
    if "value" in prediction:
        return str(prediction["value"])
    return ", ".join(f"{name} ({len(_flat(value))} values)" for name, value in prediction["outputs"].items())


def _flat(value) -> list:
    return [number for item in value for number in _flat(item)] if isinstance(value, list) else [value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="server address, e.g. http://127.0.0.1:8080")
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args()
    base = args.url.rstrip("/")

    with urllib.request.urlopen(base + "/health", timeout=10) as response:
        health = json.load(response)
    inputs = health["model"]["inputs"]
    print(f"server up, model version {health['version']}, {health['requests']} requests served")

    readings = [sample(inputs, index) for index in range(args.samples)]
    for index, one in enumerate(readings):
        answer = post_json(base + "/predict", {"inputs": one, "id": index})
        print(f"sample {answer['id']}: {shown(answer['prediction'])} (version {answer['version']}, "
              f"{answer['latency_ms']:.2f} ms)")

    if len(inputs) == 1:  # a batch is a list of samples; with several inputs, each input's list is batched
        batch = post_json(base + "/predict", {"inputs": readings, "top_k": 1})
        print(f"batch of {len(batch['predictions'])}: {[shown(p) for p in batch['predictions']]}")
    bad = post_json(base + "/predict", {"inputs": sample(inputs, 0, extra=1)})  # one value too many
    print(f"a wrong request is answered with {bad['status']}: {bad['error']}")


if __name__ == "__main__":
    main()
