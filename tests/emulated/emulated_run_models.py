"""Runs models with edgeml_runtime and saves every output: executed the same way on the host and on
the emulated Pi, so their results can be compared. Needs only numpy and edgeml_runtime.

    python emulated_run_models.py JOBS.json OUTPUTS.npz

JOBS.json: [{"key": str, "model": path, "inputs": .npy path (a batch), "raw": bool}]. Each sample runs
on its own (batch 1, one thread, so both machines do the same arithmetic); outputs are stacked.
"""

from __future__ import annotations

import json
import sys

import edgeml_runtime
import numpy as np


def main(jobs_path: str, outputs_path: str) -> None:
    with open(jobs_path) as handle:
        jobs = json.load(handle)
    results = {}
    for job in jobs:
        model = edgeml_runtime.load(job["model"], threads=1)
        batch = np.load(job["inputs"])
        per_sample = [model.run(batch[i : i + 1], raw=job["raw"]) for i in range(len(batch))]
        for name in per_sample[0]:
            results[f"{job['key']}/{name}"] = np.concatenate([outputs[name] for outputs in per_sample])
    np.savez(outputs_path, **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
