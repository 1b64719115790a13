"""`edgeml inspect MODEL --device PROFILE`: does the model fit? Microcontrollers: the TFLM arena + I/O buffers
against RAM and the model + TFLM's code against flash; Linux boards: measured peak memory against RAM."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("tflite_micro", reason="tflite-micro is not installed: pip install 'edgeml-converters[tflm]'")

from edgeml_converters.tflm import arena_with_margin, measure_arena  # noqa: E402

from edgeml.inspection import tflm_code_bytes  # noqa: E402
from tests.support.cli import edgeml  # noqa: E402
from tests.support.int8_models import build_int8_models  # noqa: E402
from tests.support.models import MLP_ONNX  # noqa: E402


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory):
    return build_int8_models(tmp_path_factory.mktemp("int8"))


def fit(model, device, *args, exit_code=0):
    done = edgeml("inspect", model, "--device", device, "--json", *args, check_exit=exit_code)
    report = json.loads(done.stdout)
    assert report["fits"] == report["fit"]["fits"]
    return report["fit"]


def test_small_cnn_fits_a_nano_33_with_the_figures_stated(int8_models):
    verdict = fit(int8_models.cnn, "arduino-nano-33-ble-sense")
    assert verdict["fits"] is True and verdict["kind"] == "mcu" and not verdict["problems"]
    ram, flash = verdict["ram"], verdict["flash"]
    # The arena is the figure `convert --to tflm` writes: TFLM's measured need plus the stated margin.
    measured = measure_arena(int8_models.cnn).required_bytes
    assert ram["arena_measured_bytes"] == measured and ram["arena_bytes"] == arena_with_margin(measured)
    io = 16 * 16 * 1 + 4  # one int8 input frame and one int8 output vector, held by the application
    assert ram["io_buffer_bytes"] == io and ram["needed_bytes"] == ram["arena_bytes"] + io
    assert ram["available_bytes"] == 256 * 1024 and ram["margin_bytes"] == 256 * 1024 - ram["needed_bytes"]
    assert flash["model_bytes"] == int8_models.cnn.stat().st_size
    assert flash["code_bytes"] == tflm_code_bytes(verdict["ops"]) and "estimate" in flash["basis"]
    assert flash["needed_bytes"] == flash["model_bytes"] + flash["code_bytes"]
    assert "measured" in ram["basis"]


def test_a_large_activation_does_not_fit_256_kb_but_fits_the_h7(int8_models):
    # A 96x96x32 int8 feature map (288 KiB) next to its 96x96x3 input: ~317 KiB of arena.
    nano = fit(int8_models.big_conv, "arduino-nano-33-ble-sense")
    assert nano["fits"] is False and nano["ram"]["fits"] is False and nano["flash"]["fits"] is True
    assert nano["ram"]["margin_bytes"] < 0
    h7 = fit(int8_models.big_conv, "nucleo-h743zi2")
    assert h7["fits"] is True and h7["ram"]["arena_limit_bytes"] == 512 * 1024
    text = edgeml("inspect", int8_models.big_conv, "--device", "arduino-nano-33-ble-sense", check_exit=0).stdout
    assert "does not fit" in text and "too big" in text and "short" in text
    edgeml("inspect", int8_models.big_conv, "--device", "arduino-nano-33-ble-sense", "--check", check_exit=1)
    edgeml("inspect", int8_models.big_conv, "--device", "nucleo-h743zi2", "--check", check_exit=0)


def test_flash_and_largest_block_limits_from_a_user_profile(int8_models, tmp_path):
    (tmp_path / "tiny.toml").write_text(
        'name = "tiny-mcu"\nkind = "mcu"\ndescription = "small flash, banked RAM"\ncpu = "Chip Y"\n'
        'core = "Arm Cortex-M0+"\narch = "armv6-m"\nclock_mhz = 48\nram_kb = 512\ncontiguous_ram_kb = 64\n'
        'flash_kb = 32\nsource = "Chip Y datasheet"\n')
    verdict = fit(int8_models.big_conv, "tiny-mcu", "--profiles", tmp_path)
    assert verdict["fits"] is False and verdict["flash"]["fits"] is False
    # 512 KB of RAM in total, but no single 64 KB block holds the arena.
    assert verdict["ram"]["fits"] is False and any("biggest block" in p for p in verdict["problems"])


def test_an_operator_tflm_lacks_means_it_does_not_fit(int8_models):
    verdict = fit(int8_models.gelu_mlp, "esp32-s3-devkitc")
    assert verdict["fits"] is False and verdict["ram"] is None
    assert any("no kernel for GELU" in problem for problem in verdict["problems"])


def test_a_model_tflm_aborts_on_does_not_fit_and_inspect_survives(int8_models):
    verdict = fit(int8_models.dead_softmax, "nucleo-l4r5zi")
    assert verdict["fits"] is False and any("failed a check" in problem for problem in verdict["problems"])


def test_linux_board_uses_measured_peak_memory(int8_models, tmp_path):
    verdict = fit(int8_models.mlp, "rpi-zero2w")
    assert verdict["kind"] == "linux" and verdict["fits"] is True and verdict["flash"] is None
    ram = verdict["ram"]
    assert ram["available_bytes"] == 512 * 1024 * 1024 and ram["needed_bytes"] == ram["peak_rss_bytes"] > 0
    assert "peak resident memory" in ram["basis"]
    # A process with Python, numpy and LiteRT takes tens of MB: a 16 MB board cannot hold it.
    (tmp_path / "small.toml").write_text(
        'name = "small-linux"\ndescription = "16 MB"\narch = "armv7l"\ncpu = "any"\ncores = 1\nram_mb = 16\n'
        'os = "Linux"\npython = "3.11"\nplatforms = ["linux_armv7l"]\nbackends = ["litert"]\nthreads = 1\n')
    small = fit(int8_models.mlp, "small-linux", "--profiles", tmp_path)
    assert small["fits"] is False and small["problems"]


def test_wrong_model_kinds_are_usage_errors(int8_models):
    onnx = edgeml("inspect", MLP_ONNX, "--device", "rpi-pico2", check_exit=2)
    assert "runs .tflite models through TensorFlow Lite Micro" in onnx.stderr and "Traceback" not in onnx.stderr
    unknown = edgeml("inspect", int8_models.cnn, "--device", "pico3", check_exit=2)
    assert "unknown device 'pico3'" in unknown.stderr
    assert "--check needs --device" in edgeml("inspect", int8_models.cnn, "--check", check_exit=2).stderr
