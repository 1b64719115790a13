"""Microcontroller memory and TFLM host latency, per model (issue 13).

1. Memory: the arena TensorFlow Lite Micro's allocator needs (the smallest arena it sets the model up in), against
   the naive sum of every activation tensor in a buffer of its own: what TFLM's greedy memory planner saves by
   reusing memory between tensors whose lifetimes do not overlap. Then kTensorArenaSize (the figure
   `edgeml convert --to tflm` writes: measured + margin) + I/O buffers against each microcontroller profile's RAM,
   and the model + TFLM's estimated code against its flash.
2. Latency on this machine: the same int8 .tflite through the TFLM interpreter (reference kernels) and through
   edgeml_runtime/LiteRT (1 thread), batch 1, in paired interleaved rounds; medians and the median of per-round
   ratios, so a slow patch of the shared machine hits both alike. The host says how the two runtimes compare,
   not how fast a microcontroller is (MLPerf Tiny measures that on the board).

The models are built here (random weights, seeded; full-integer quantization calibrated on random data): the
MLP and small CNN of the tests, a DS-CNN keyword spotter of MLPerf Tiny's shape (49x10 MFCC frames) and a
MobileNetV1 0.25 at 96x96 (the visual wake words shape). Run: python -m benchmarks.mcu_memory
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def build_models(directory: Path) -> dict:
    """name -> path of a full-integer int8 .tflite."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    layers = keras.layers

    def ds_block(x, filters, stride=1):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    kws_in = keras.Input((49, 10, 1))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same")(kws_in)))
    for _ in range(4):
        x = ds_block(x, 64)
    kws = keras.Model(kws_in, layers.Dense(12, activation="softmax")(layers.GlobalAveragePooling2D()(x)))

    specs = {
        "MLP 20-32-16-4": (keras.Sequential([
            keras.Input((20,)), layers.Dense(32, activation="relu"), layers.Dense(16, activation="relu"),
            layers.Dense(4, activation="softmax")]), (20,)),
        "CNN 16x16x1": (keras.Sequential([
            keras.Input((16, 16, 1)), layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(),
            layers.DepthwiseConv2D(3, activation="relu"), layers.Conv2D(16, 1, activation="relu"),
            layers.GlobalAveragePooling2D(), layers.Dense(4, activation="softmax")]), (16, 16, 1)),
        "DS-CNN KWS 49x10": (kws, (49, 10, 1)),
        # Logits, no softmax: with random weights the features this head sees are near-constant, which gives
        # TFLM's int8 softmax an input scale its check rejects (TFLM then aborts; see measure_arena).
        "MobileNetV1 0.25 96x96": (keras.Sequential([
            keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, include_top=False,
                                         pooling="avg"),
            layers.Dense(2)]), (96, 96, 3)),
    }
    paths = {}
    for index, (name, (model, shape)) in enumerate(specs.items()):
        calibration = rng.uniform(-1.0, 1.0, size=(32, *shape)).astype("float32")
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda data=calibration: ([sample[None]] for sample in data)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type, converter.inference_output_type = tf.int8, tf.int8
        paths[name] = directory / f"model{index}.int8.tflite"
        paths[name].write_bytes(converter.convert())
    return paths


def memory(name, path, profiles):
    from edgeml_converters.tflm import arena_with_margin, measure_arena, read_model

    from edgeml.inspection import tflm_code_bytes

    facts = read_model(path)
    measured = measure_arena(path, facts)
    naive = facts.naive_activation_bytes
    arena = arena_with_margin(measured.required_bytes)
    io = sum(t.bytes for t in facts.tensors if t.name in (*facts.input_names, *facts.output_names))
    flash = path.stat().st_size + tflm_code_bytes(facts.ops)
    print(f"\n{name}: {path.stat().st_size / 1024:.1f} KiB model, {facts.op_count} operator nodes "
          f"({', '.join(facts.ops)})")
    print(f"  naive sum of activation tensors {naive / 1024:9.1f} KiB ({len(facts.activation_tensors)} tensors)")
    print(f"  TFLM arena needed               {measured.required_bytes / 1024:9.1f} KiB "
          f"(planned tensors + scratch {measured.head_bytes / 1024:.1f} KiB, persistent "
          f"{measured.tail_bytes / 1024:.1f} KiB)")
    print(f"  planner: tensors take {measured.head_bytes / naive:.2f} x the naive sum "
          f"(saves {(naive - measured.head_bytes) / 1024:.1f} KiB); kTensorArenaSize {arena / 1024:.1f} KiB")
    cells = []
    for profile in profiles:
        mcu = profile.mcu
        ram_need = arena + io
        ok = ram_need <= mcu.ram_bytes and arena <= mcu.arena_limit_bytes and flash <= mcu.flash_bytes
        cells.append(f"{profile.name} {'fits' if ok else 'NO'} (RAM {ram_need / mcu.ram_bytes:.0%}, "
                     f"flash {flash / mcu.flash_bytes:.0%})")
    print("  " + "; ".join(cells))
    return {"naive": naive, "required": measured.required_bytes, "head": measured.head_bytes}


def latency(name, path, rounds, repeats):
    import edgeml_runtime as er
    from edgeml_converters.tflm import TflmInterpreter, arena_with_margin, measure_arena

    data = path.read_bytes()
    tflm = TflmInterpreter(data, arena_with_margin(measure_arena(data).required_bytes))
    litert = er.load(path, threads=1)
    spec = tflm.inputs[0]
    x = np.random.default_rng(0).integers(-128, 127, size=spec.shape, dtype=np.int8, endpoint=True)
    feeds = {litert.inputs[0].name: x}

    def run_tflm():
        tflm.set_raw(0, x)
        tflm.invoke()
        return tflm.raw.get_output(0)

    def run_litert():
        return litert.run(feeds, raw=True)

    diff = np.abs(run_tflm().astype(int) - next(iter(run_litert().values())).astype(int)).max()
    tflm_ms, litert_ms = [], []
    for _ in range(rounds):  # interleaved pairs
        litert_ms.append(time_calls(run_litert, repeats))
        tflm_ms.append(time_calls(run_tflm, repeats))
    ratio = statistics.median(mine / theirs for mine, theirs in zip(tflm_ms, litert_ms))
    print(f"{name:<24} TFLM {statistics.median(tflm_ms):9.3f} ms   LiteRT {statistics.median(litert_ms):9.3f} ms   "
          f"TFLM/LiteRT {ratio:6.1f}x   outputs differ by <= {diff} quanta")
    return ratio


def time_calls(call, repeats):
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats * 1000.0


def main():
    from edgeml_converters.errors import ConversionError

    from edgeml.device.profiles import load_profiles

    profiles = [profile for profile in load_profiles().values() if profile.is_mcu]
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_models(Path(tmp))
        print("memory: TFLM's allocator on this machine vs every tensor in its own buffer; fit per board "
              "(kTensorArenaSize + I/O vs RAM, model + estimated TFLM code vs flash)")
        usable = {}
        for name, path in paths.items():
            try:
                memory(name, path, profiles)
                usable[name] = path
            except ConversionError as error:  # e.g. a kernel check TFLM fails on this model: reported, not fatal
                print(f"\n{name}: {error}")
        print("\nlatency: batch 1, 1 thread, median ms per call over interleaved rounds (host; TFLM reference "
              "kernels, LiteRT optimized kernels; on tiny models the per-call cost of TFLM's Python wrapper, which "
              "copies inputs and outputs, dominates)")
        for name, path in usable.items():
            size = path.stat().st_size
            latency(name, path, rounds=9 if size > 100_000 else 15, repeats=3 if size > 100_000 else 200)


if __name__ == "__main__":
    main()
