"""The same models on the same inputs give the same answers on x86 (host) and aarch64 (emulated Pi).

`emulated_run_models.py` runs on both machines; only the CPU architecture (and its kernels: AVX on the host,
NEON on the Pi) differs, since the wheels are the same releases.
"""

from __future__ import annotations

import json
from pathlib import Path

import edgeml_runtime
import numpy as np
import pytest

from tests.emulated import emulated_run_models
from tests.emulated.emulated_models import IMAGE_SHAPE, onnx_output_step

pytestmark = [pytest.mark.emulated, pytest.mark.slow]

SAMPLES = 8
HERE = Path(__file__).parent
RUN_MODELS = HERE / "emulated_run_models.py"


@pytest.fixture(scope="session")
def both_machines(emulated_pi, models, tmp_path_factory):
    """Outputs per model key from the host and from the emulated Pi: (host, pi)."""
    work = tmp_path_factory.mktemp("parity")
    images = np.random.default_rng(5).uniform(-1, 1, size=(SAMPLES, *IMAGE_SHAPE)).astype(np.float32)
    int8_input = edgeml_runtime.load(models["tflite_int8"]).inputs[0]
    batches = {"float": images, "int8": edgeml_runtime.quantize(images, int8_input.quantization, "int8")}
    jobs = []
    for key, path in models.items():
        raw = key == "tflite_int8"  # its int8 tensors as they are, to compare in quantization steps
        batch_file = work / f"{key}.npy"
        np.save(batch_file, batches["int8" if raw else "float"])
        jobs.append({"key": key, "model": str(path), "inputs": str(batch_file), "raw": raw})
    (work / "jobs.json").write_text(json.dumps(jobs))

    emulated_run_models.main(str(work / "jobs.json"), str(work / "host.npz"))
    done = emulated_pi.run(["python3", str(RUN_MODELS), str(work / "jobs.json"), str(work / "pi.npz")],
                           capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with np.load(work / "host.npz") as host, np.load(work / "pi.npz") as pi:
        assert sorted(host.files) == sorted(pi.files)
        return {name: host[name] for name in host.files}, {name: pi[name] for name in pi.files}


def outputs_of(results: dict, key: str) -> np.ndarray:
    (name,) = [name for name in results if name.startswith(key + "/")]
    return results[name]


@pytest.mark.parametrize("key", ["tflite_fp32", "onnx_fp32"])
def test_float_models_agree(both_machines, key):
    host, pi = (outputs_of(results, key) for results in both_machines)
    assert host.shape == pi.shape == (SAMPLES, 5)
    assert host.dtype == pi.dtype == np.float32
    # Float32 kernels sum in a different order on AVX and NEON (and may fuse multiply-adds
    # differently), which moves results by a few ULPs per operation; over 4 layers with outputs of
    # order 0.01-1 that stays far below 1e-5. A real porting bug (wrong layout, wrong kernel) shows
    # up as differences of the size of the outputs themselves.
    np.testing.assert_allclose(pi, host, rtol=1e-4, atol=1e-5)
    assert np.abs(host).max() > 1e-3  # the comparison is not between two near-zero outputs


def test_int8_tflite_within_one_step(both_machines):
    host, pi = (outputs_of(results, "tflite_int8") for results in both_machines)
    assert host.dtype == pi.dtype == np.int8
    assert host.shape == pi.shape == (SAMPLES, 5)
    # Integer kernels are exact; only the final requantization rounding may differ between the x86
    # and the ARM implementation, by at most one step of the output's int8 scale.
    steps = np.abs(host.astype(np.int16) - pi.astype(np.int16))
    assert steps.max() <= 1, f"outputs differ by up to {steps.max()} quantization steps"
    assert len(np.unique(host)) > 1  # the outputs vary with the input, so equality means something


def test_int8_onnx_within_one_step(both_machines, models):
    host, pi = (outputs_of(results, "onnx_int8") for results in both_machines)
    step = onnx_output_step(models["onnx_int8"])
    assert host.shape == pi.shape == (SAMPLES, 5)
    # The QDQ model computes in int8 and dequantizes its output: the values are multiples of the
    # output's scale, and x86 and ARM may round the last requantization differently by one step
    # (half a step of float slack for the dequantization's own rounding).
    assert np.abs(host - pi).max() <= 1.5 * step
    assert np.abs(host).max() > 2 * step
