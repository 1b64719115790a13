"""One Model used from several threads at once gives exactly the answers of one thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import edgeml_runtime as er
import numpy as np

from tests.support.marks import model_params


@model_params("mlp_fp32.tflite", "mlp_int8.tflite", "mlp_fp32.onnx")
def test_concurrent_runs_equal_sequential_runs(data_dir, model_file):
    model = er.load(data_dir / model_file, threads=1)
    rng = np.random.default_rng(3)
    # Different batch sizes per call, so per-thread interpreters also resize concurrently.
    batches = [rng.normal(size=(1 + index % 4, 8)).astype(np.float32) for index in range(400)]
    expected = [model.run(batch)[model.outputs[0].name] for batch in batches]

    def run(index):
        return index, model.run(batches[index])[model.outputs[0].name]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, list(range(len(batches))) * 3))
    assert len(results) == 3 * len(batches)
    for index, output in results:
        np.testing.assert_array_equal(output, expected[index])
