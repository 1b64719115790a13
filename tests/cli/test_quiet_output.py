"""No TensorFlow / XLA / absl / LiteRT start-up lines on a user's terminal (edgeml.quiet), in any command;
all of them back with `edgeml --debug`. Commands run as a user's shell runs them: no TF_CPP_MIN_LOG_LEVEL."""

from __future__ import annotations

import pytest

from tests.support.cli import edgeml, native_noise, user_environment
from tests.support.models import MLP_FP32, MLP_ONNX

pytestmark = pytest.mark.slow


def test_train_and_convert_stderr_is_only_progress(digits_run):
    assert native_noise(digits_run.train.stderr) == [], digits_run.train.stderr
    assert "training" in digits_run.train.stderr and "evaluating on the test split" in digits_run.train.stderr
    assert native_noise(digits_run.convert.stderr) == [], digits_run.convert.stderr
    assert "validating model.int8.tflite" in digits_run.convert.stderr


@pytest.mark.parametrize("name", ["model/model.keras", "converted/model.int8.tflite", "converted/model.int8.onnx"])
def test_inspect_is_quiet(digits_run, name):
    done = edgeml("inspect", digits_run.root / name, env=digits_run.env, check_exit=0)
    assert native_noise(done.stderr) == [] and done.stderr.strip() == "", done.stderr


def test_bench_is_quiet_and_debug_shows_the_native_lines(tmp_path):
    environment = user_environment()
    args = ["bench", MLP_FP32, MLP_ONNX, "--runs", "5", "--min-seconds", "0"]
    quiet = edgeml(*args, env=environment, check_exit=0)
    assert native_noise(quiet.stderr) == [], quiet.stderr
    debug = edgeml("--debug", *args, env=environment, check_exit=0)
    assert "Created TensorFlow Lite XNNPACK delegate" in debug.stderr  # kept, not lost: under --debug


def test_keras_inspect_with_debug_shows_tensorflow_start_up(digits_run):
    debug = edgeml("--debug", "inspect", digits_run.model / "model.keras", env=digits_run.env, check_exit=0)
    assert native_noise(debug.stderr), "--debug should show TensorFlow's own start-up lines"
