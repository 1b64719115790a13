"""Whole-process cost of `python -m edgeml_runtime bench` with one run vs a bare backend script.

Target (issues 2 and 17): at most 1.3x the wall time and 1.2x the peak memory of a script that imports the
backend, loads the model and runs once. TensorFlow's own interpreter is shown for scale.
Each child's peak RSS comes from os.wait4; each round runs every command once, in rotating order, and the
ratios are medians of per-round ratios.

Models: the tiny fp32 MLP, the digits CNN of `make demo` as int8 (int8 I/O), an MLPerf Tiny-sized int8
network (the Visual Wake Words model's architecture, MobileNetV1 alpha 0.25 on 96x96x3, random weights,
built once with TensorFlow in a child process and cached), and MobileNetV2 (fp32) unless --quick.
Run: python -m benchmarks.process_cost [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from benchmarks.common import interleaved, median_ratio, print_header
from tests.support.models import TINY, digits_cnn, mobilenet

BARE = {
    "tflite": """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_content=open(sys.argv[1], 'rb').read(), num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d['index'], np.random.random(tuple(d['shape'])).astype(d['dtype']))
it.invoke()
it.get_tensor(it.get_output_details()[0]['index'])
""",
    "onnx": """
import sys, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1
s = ort.InferenceSession(open(sys.argv[1], 'rb').read(), o, providers=['CPUExecutionProvider'])
i = s.get_inputs()[0]
shape = [1 if not isinstance(d, int) else d for d in i.shape]
s.run(None, {i.name: np.random.random(shape).astype(np.float32)})
""",
}
TENSORFLOW = """
import sys, numpy as np, tensorflow as tf
it = tf.lite.Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d['index'], np.random.random(tuple(d['shape'])).astype(np.float32))
it.invoke()
"""


def measure(argv):
    """Wall seconds and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"child failed: {argv}")
    return time.perf_counter() - started, usage.ru_maxrss / 1024.0


def compare(label, path, fmt, rounds, with_tensorflow):
    commands = {
        "bare script": [sys.executable, "-c", BARE[fmt], str(path)],
        "edgeml_runtime bench": [sys.executable, "-m", "edgeml_runtime", "bench", str(path), "--runs", "1",
                                 "--warmup", "0", "--min-seconds", "0", "--warmup-seconds", "0", "--threads", "1",
                                 "--json"],
    }
    if with_tensorflow and fmt == "tflite":
        commands["tensorflow tf.lite"] = [sys.executable, "-c", TENSORFLOW, str(path)]
    samples = interleaved({name: (lambda argv=argv: measure(argv)) for name, argv in commands.items()}, rounds)
    base = samples["bare script"]
    for name, values in samples.items():
        wall = statistics.median(v[0] for v in values)
        rss = statistics.median(v[1] for v in values)
        wall_ratio = median_ratio([v[0] for v in base], [v[0] for v in values])
        rss_ratio = median_ratio([v[1] for v in base], [v[1] for v in values])
        print(f"{label:<20} {fmt:<6} {name:<22} wall {wall * 1000:8.0f} ms ({wall_ratio:5.2f}x)   "
              f"peak RSS {rss:7.1f} MB ({rss_ratio:5.2f}x)")


# The MLPerf Tiny Visual Wake Words network's shape (MobileNetV1, alpha 0.25, 96x96x3, 2 classes), full
# integer with int8 I/O, calibrated on random images: the file size and operators of the benchmark's model.
BUILD_VWW = """
import sys, numpy as np, keras, tensorflow as tf
keras.utils.set_random_seed(0)
model = keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=2)
def representative():
    rng = np.random.default_rng(0)
    for _ in range(32):
        yield [rng.uniform(0, 1, (1, 96, 96, 3)).astype(np.float32)]
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = representative
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.inference_input_type = converter.inference_output_type = tf.int8
open(sys.argv[1], 'wb').write(converter.convert())
"""


def mlperf_tiny_vww():
    """Path of the VWW-shaped int8 .tflite, built on first use (TensorFlow in a child process), then reused."""
    from edgeml_runtime.files import cache_root

    path = cache_root() / "bench-models" / "mlperf_tiny_vww_int8.tflite"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".partial")
        subprocess.run([sys.executable, "-c", BUILD_VWW, str(temporary)], check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, stdout=subprocess.DEVNULL)
        temporary.replace(path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the tiny MLP's TensorFlow row and MobileNetV2")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per model (default 9)")
    args = parser.parse_args()
    print_header("Whole-process cost of `python -m edgeml_runtime bench` (1 run) vs a bare backend script; "
                 "ratios vs the bare script")
    compare("digits CNN int8", digits_cnn()["int8"], "tflite", rounds=args.rounds, with_tensorflow=False)
    compare("MLPerf Tiny VWW int8", mlperf_tiny_vww(), "tflite", rounds=args.rounds, with_tensorflow=False)
    if args.quick:
        return
    compare("tiny MLP", TINY["tflite"], "tflite", rounds=args.rounds, with_tensorflow=True)
    compare("tiny MLP", TINY["onnx"], "onnx", rounds=args.rounds, with_tensorflow=False)
    big = mobilenet()
    compare("MobileNetV2 224", big["tflite"], "tflite", rounds=5, with_tensorflow=False)
    compare("MobileNetV2 224", big["onnx"], "onnx", rounds=5, with_tensorflow=False)


if __name__ == "__main__":
    main()
