"""Call a model served by `python -m edgeml_runtime serve MODEL --http HOST:PORT`, from any app that
speaks HTTP (this one uses only Python's standard library).

    python examples/http_client.py http://127.0.0.1:8080 [--samples 3]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="server address, e.g. http://127.0.0.1:8080")
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args()
    base = args.url.rstrip("/")

    with urllib.request.urlopen(base + "/health", timeout=10) as response:
        health = json.load(response)
    print(f"server up, model version {health['version']}, {health['requests']} requests served")

    readings = [[math.sin(i + channel) for channel in range(8)] for i in range(args.samples)]
    for index, reading in enumerate(readings):
        answer = post_json(base + "/predict", {"inputs": reading, "id": index})
        prediction = answer["prediction"]
        shown = prediction.get("label", prediction.get("value"))
        print(f"sample {answer['id']}: {shown} (version {answer['version']}, {answer['latency_ms']:.2f} ms)")

    batch = post_json(base + "/predict", {"inputs": readings, "top_k": 1})
    print(f"batch of {len(batch['predictions'])}: {[p.get('label') for p in batch['predictions']]}")
    bad = post_json(base + "/predict", {"inputs": [1, 2, 3]})
    print(f"a wrong request is answered with {bad['status']}: {bad['error']}")


if __name__ == "__main__":
    main()
