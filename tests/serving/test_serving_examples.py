"""The apps in examples/ run as a user would run them, against real servers and a real broker."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import edgeml_runtime as er
import numpy as np
import pytest
from edgeml_runtime import Predictor

from tests.support.local_servers import ServeProcess
from tests.support.marks import needs_backend_for
from tests.support.models import ROOT, TWO_IO

EXAMPLES = ROOT / "examples"


def run_example(name, *args, timeout=60):
    return subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_sensor_loop_classifies_every_reading(deployment):
    result = run_example("sensor_loop.py", deployment, "--steps", "5", "--interval", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    labels = {"idle", "walk", "run", "fall"}
    for step, line in enumerate(lines):
        match = re.fullmatch(rf"step {step}: (\w+) \((0\.\d\d|1\.00)\) by model v1 in [\d.]+ ms", line)
        assert match and match.group(1) in labels, line


def test_http_client_talks_to_the_server(deployment, tmp_path):
    serve = ServeProcess([deployment, "--http", "127.0.0.1:0"], tmp_path)
    try:
        result = run_example("http_client.py", serve.http_url(), "--samples", "2")
    finally:
        serve.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "server up, model version v1, 0 requests served"
    expected = Predictor.from_bundle(deployment)
    for index in range(2):
        label = expected.predict([math.sin(index + channel) for channel in range(8)]).label
        assert re.fullmatch(rf"sample {index}: {label} \(version v1, [\d.]+ ms\)", lines[1 + index]), lines
    assert lines[3].startswith("batch of 2: [")
    assert lines[4].startswith("a wrong request is answered with 422: invalid input: input 'features'")


@pytest.mark.mqtt
def test_mqtt_publisher_and_subscriber_pair(deployment, broker, tmp_path):
    serve = ServeProcess([deployment, "--mqtt", f"127.0.0.1:{broker.port}", "--topic-in", "ex/in",
                          "--topic-out", "ex/out"], tmp_path)
    subscriber = None
    try:
        serve.wait_for("listening on 'ex/in'")
        subscriber = subprocess.Popen([sys.executable, str(EXAMPLES / "mqtt_subscriber.py"), "--broker",
                                       f"127.0.0.1:{broker.port}", "--topic", "ex/out", "--count", "6",
                                       "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert subscriber.stdout.readline().strip() == "ready"
        published = run_example("mqtt_publisher.py", "--broker", f"127.0.0.1:{broker.port}", "--topic", "ex/in",
                                "--count", "6", "--interval", "0.01")
        assert published.returncode == 0, published.stderr
        assert published.stdout.splitlines() == [f"sent reading {i}" for i in range(6)]
        out, err = subscriber.communicate(timeout=40)
    finally:
        if subscriber and subscriber.poll() is None:
            subscriber.kill()
        serve.stop()
    assert subscriber.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 6
    ids = sorted(int(re.match(r"reading (\d+): (idle|walk|run|fall) \(model v1, [\d.]+ ms\)$", line).group(1))
                 for line in lines)
    assert ids == list(range(6))


# -- the examples adapt to the model: another input width, other outputs, images ---------------------------

AUTOENCODER = ROOT / "tests" / "runtime" / "data" / "autoencoder_fp32.tflite"  # 640 values in, 640 out
IMAGE_CNN = ROOT / "tests" / "runtime" / "data" / "image_cnn_fp32.tflite"  # (12, 10, 3) pixels -> 3 scores


@needs_backend_for(AUTOENCODER)
def test_sensor_loop_follows_the_model_input_width():
    """640 values per reading for the autoencoder (not 8 channels), and its reconstruction error."""
    result = run_example("sensor_loop.py", AUTOENCODER, "--steps", "3", "--interval", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for step, line in enumerate(lines):
        assert re.fullmatch(rf"step {step}: reconstruction error \d+\.\d{{4}} by model \w+ in [\d.]+ ms", line), line


@needs_backend_for(TWO_IO)
def test_sensor_loop_feeds_every_input_of_a_two_input_model():
    result = run_example("sensor_loop.py", TWO_IO, "--steps", "1", "--interval", "0")
    assert result.returncode == 0, result.stderr
    names = [spec.name for spec in er.load(TWO_IO).outputs]
    assert all(name in result.stdout for name in names), result.stdout


@needs_backend_for(AUTOENCODER)
def test_http_client_shapes_its_requests_from_health(tmp_path):
    model = tmp_path / AUTOENCODER.name
    model.write_bytes(AUTOENCODER.read_bytes())
    serve = ServeProcess([model, "--http", "127.0.0.1:0"], tmp_path)
    try:
        result = run_example("http_client.py", serve.http_url(), "--samples", "2")
    finally:
        serve.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"sample 0: \S+ \(640 values\) \(version \w+, [\d.]+ ms\)", lines[1]), lines
    assert lines[3] == "batch of 2: " + str([lines[1].split(": ", 1)[1].split(" (version")[0]] * 2)
    assert lines[4].startswith("a wrong request is answered with 422: invalid input: input 'frames'"), lines


@needs_backend_for(IMAGE_CNN)
def test_image_folder_example_classifies_each_frame(tmp_path):
    """A folder of images of other sizes and modes stands in for a camera; every frame is resized and
    converted as the model's input says, and labelled with labels.json's class names."""
    image = pytest.importorskip("PIL.Image")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / IMAGE_CNN.name).write_bytes(IMAGE_CNN.read_bytes())
    classes = ["dark", "mid", "light"]
    labels = {"schema": "edgeml.labels/1", "task": "classification", "classes": classes,
              "image": {"height": 12, "width": 10, "channels": 3, "color_mode": "rgb", "value_range": [0, 255]}}
    (model_dir / "labels.json").write_text(json.dumps(labels))
    frames = tmp_path / "camera"
    frames.mkdir()
    rng = np.random.default_rng(0)
    image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(frames / "frame-0.png")
    image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(frames / "frame-1.png")  # grayscale
    image.fromarray(np.full((50, 20, 3), 200, np.uint8)).save(frames / "frame-2.jpg")
    (frames / "notes.txt").write_text("not an image")

    result = run_example("image_folder.py", model_dir / IMAGE_CNN.name, frames)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    predictor = Predictor.from_model(model_dir / IMAGE_CNN.name)
    for line, name in zip(lines, ["frame-0.png", "frame-1.png", "frame-2.jpg"]):
        with image.open(frames / name) as frame:  # what the example must do: RGB, width 10 x height 12
            pixels = np.asarray(frame.convert("RGB").resize((10, 12), image.BILINEAR), dtype=np.float32)
        expected = predictor.predict(pixels)
        assert re.fullmatch(rf"{re.escape(name)}: {expected.label} \({expected.score:.2f}\) in [\d.]+ ms", line), line
    assert len(lines) == 3


@pytest.mark.mqtt
@needs_backend_for(AUTOENCODER)
def test_mqtt_publisher_takes_its_shape_from_the_model(broker, tmp_path):
    serve = ServeProcess([AUTOENCODER, "--mqtt", f"127.0.0.1:{broker.port}", "--topic-in", "ae/in",
                          "--topic-out", "ae/out"], tmp_path)
    subscriber = None
    try:
        serve.wait_for("listening on 'ae/in'")
        subscriber = subprocess.Popen([sys.executable, str(EXAMPLES / "mqtt_subscriber.py"), "--broker",
                                       f"127.0.0.1:{broker.port}", "--topic", "ae/out", "--count", "2",
                                       "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert subscriber.stdout.readline().strip() == "ready"
        published = run_example("mqtt_publisher.py", "--broker", f"127.0.0.1:{broker.port}", "--topic", "ae/in",
                                "--count", "2", "--interval", "0.01", "--model", AUTOENCODER)
        assert published.returncode == 0, published.stderr
        out, err = subscriber.communicate(timeout=40)
    finally:
        if subscriber and subscriber.poll() is None:
            subscriber.kill()
        serve.stop()
    assert subscriber.returncode == 0, err
    assert all(re.match(r"reading \d: outputs \S+ \(model \w+, [\d.]+ ms\)$", line) for line in out.splitlines()), out
