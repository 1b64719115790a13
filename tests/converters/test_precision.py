"""--explain and the repair ladder on a model whose int8 conversion collapses for a known reason: one hidden unit
inflated x300 (the next layer's weights / 300, so the float function is unchanged). Real conversions (TensorFlow,
tf2onnx, LiteRT, ONNX Runtime); the helpers' tests first need no conversion."""

from __future__ import annotations

import json

import numpy as np
import pytest
from edgeml_converters.explain import Graph, LayerNames, Node, candidates, output_error
from edgeml_converters.onnx_quantize import weight_range_for

from tests.support.cli import invoke
from tests.support.precision_models import INFLATED_LAYER


def test_onnx_weights_are_7_bit_only_where_int8_kernels_saturate():
    assert weight_range_for("x86_64", ["sse4_1", "avx2", "fma"]).reduce_range is True
    assert "AVX2 but no VNNI" in weight_range_for("x86_64", ["avx2"]).reason
    assert weight_range_for("x86_64", ["avx2", "avx512f", "avx512_vnni"]).reduce_range is False
    assert weight_range_for("x86_64", ["avx2", "avx_vnni"]).reduce_range is False
    assert weight_range_for("aarch64", ["asimd", "asimddp"]).reduce_range is False
    assert weight_range_for("riscv64", []).reduce_range is True  # not ruled out: the safe choice
    assert weight_range_for("x86_64", ["avx2"]).to_dict()["weight_bits"] == 7


def test_graph_names_map_back_to_keras_layers():
    names = LayerNames.__new__(LayerNames)
    names.names, names.compute, names.model_name = ["dense", "dense_1", "bn"], {"dense", "dense_1"}, "sequential"
    names._known, names.suffixed = set(names.names), False
    names.detect_suffix(["sequential_1/dense_1/MatMul"])
    assert names.suffixed  # exported names carry the tracing suffix: dense_1 is layer "dense"
    assert names.layer_of("sequential_1/dense_1/MatMul;sequential_1/dense_1/Relu") == "dense"
    assert names.layer_of("sequential_1/dense_1_1/BiasAdd") == "dense_1"
    # A folded BatchNormalization names the compute layer, not the norm.
    assert names.layer_of("sequential_1/bn_1/FusedBatchNormV3;sequential_1/dense_1/MatMul") == "dense"
    assert names.layer_of("StatefulPartitionedCall:0") is None


def test_a_layer_is_measured_with_the_tensor_it_produces_kept_in_float():
    # a -> relu -> pool -> b -> c: keeping `a` in float keeps its output unquantized up to b, which reads it.
    nodes = [Node("a", "Gemm", ("x",), ("a:0",), "a"), Node("a_relu", "Relu", ("a:0",), ("r:0",), "a"),
             Node("pool", "MaxPool", ("r:0",), ("p:0",), None), Node("b", "Gemm", ("p:0",), ("b:0",), "b"),
             Node("c", "Gemm", ("b:0",), ("y",), "c")]
    found = {candidate.name: candidate for candidate in candidates(Graph(nodes, frozenset({"Gemm"})))}
    assert list(found) == ["a", "b", "c"]
    assert found["a"].float_nodes == ("a", "a_relu", "pool", "b") and found["a"].float_layers == ("a", "b")
    assert found["c"].float_nodes == ("c",)
    assert output_error({"y": np.ones((2, 3))}, {"y": np.ones((2, 3))}) == 0.0
    assert output_error({"y": np.ones((1, 4))}, {"y": np.zeros((1, 4))}) == pytest.approx(1.0)


def test_explain_and_max_drop_need_int8_and_a_sane_budget():
    from edgeml_converters import ConvertOptions
    from edgeml_runtime import EdgeMLError

    with pytest.raises(EdgeMLError, match="--explain works on full-integer artifacts: add --int8"):
        ConvertOptions(modes=("fp32",), explain=True)
    with pytest.raises(EdgeMLError, match="--max-drop works on full-integer"):
        ConvertOptions(modes=("fp32", "fp16"), max_drop=1)
    with pytest.raises(EdgeMLError, match="between 0 and 100"):
        ConvertOptions(modes=("int8",), max_drop=-1)
    assert ConvertOptions(modes=("int8",), max_drop=0.5, explain=True).repair is True


def test_evaluation_data_give_class_labels_when_they_are_classes(tmp_path):
    from edgeml_converters.data_plan import _read_evaluation
    from edgeml_converters.errors import CalibrationError

    x = np.zeros((4, 3), "float32")
    np.savez(tmp_path / "test.npz", x=x, y=np.array([0, 2, 1, 2]))
    arrays, labels, _ = _read_evaluation(tmp_path / "test.npz")
    assert arrays.shape == (4, 3) and labels.tolist() == [0, 2, 1, 2]
    np.savez(tmp_path / "onehot.npz", x=x, y=np.eye(3)[[1, 0, 2, 2]])
    assert _read_evaluation(tmp_path / "onehot.npz")[1].tolist() == [1, 0, 2, 2]
    np.savez(tmp_path / "regression.npz", x=x, y=np.array([0.5, 1.25, 3.0, 2.0]))
    assert _read_evaluation(tmp_path / "regression.npz")[1] is None  # no classes: agreement/cosine instead
    with pytest.raises(CalibrationError, match="not found"):
        _read_evaluation(tmp_path / "missing.npz")


@pytest.mark.slow
def test_equalization_keeps_the_function_and_evens_out_the_channels():
    import keras
    from edgeml_converters.equalize import equalize

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(3, 1, name="pointwise", activation="relu6")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs)
    bn = model.get_layer("bn")
    gamma, beta, mean, variance = bn.get_weights()
    bn.set_weights([gamma * np.array([200.0, 1, 1, 1], "float32"), beta, mean, variance])  # channel 0 inflated
    kernel, bias = model.get_layer("pointwise").get_weights()
    kernel[:, :, 0, :] /= 200.0
    model.get_layer("pointwise").set_weights([kernel, bias])
    x = np.random.default_rng(0).normal(size=(16, 6, 6, 2)).astype("float32")

    copy, pairs = equalize(model)
    assert [pair.describe() for pair in pairs] == ["conv + bn -> pointwise"]  # ReLU6 ends the next pair
    np.testing.assert_allclose(copy.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    effective = np.abs(copy.get_layer("bn").get_weights()[0])
    assert effective.max() / effective.min() < 20  # was 200x
    assert model.get_layer("bn").get_weights()[0][0] == pytest.approx(gamma[0] * 200.0)  # the original untouched


# --- real conversions ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inflated(tmp_path_factory):
    from tests.support.precision_models import digits, inflated_channel

    root = tmp_path_factory.mktemp("inflated")
    data = digits()
    inflated_channel(data).save(root / "model.keras")
    np.savez(root / "calibration.npz", x=data.x_train[:300])  # found next to the model, as the trainer writes it
    np.savez(root / "test.npz", x=data.x_test, y=data.y_test)
    return root


def _by_path(manifest):
    return {entry["path"]: entry for entry in manifest["artifacts"]}


@pytest.mark.slow
def test_plain_int8_collapses_and_explain_ranks_the_inflated_layer_first(inflated, tmp_path):
    from edgeml_converters import GatesFailed, convert

    with pytest.raises(GatesFailed) as failed:
        convert(inflated / "model.keras", tmp_path / "out", isolate=False, modes=("fp32", "int8"), explain=True,
                repair=False)
    artifacts = _by_path(failed.value.manifest)
    for path in ("model.int8.tflite", "model.int8.onnx"):
        validation = artifacts[path]["validation"]
        assert validation["passed"] is False and "repair" not in artifacts[path]
        assert validation["eval"]["metric"] == "accuracy" and validation["eval"]["drop_points"] > 10  # collapsed
        layers = validation["layers"]
        assert layers[0]["name"] == INFLATED_LAYER, (path, layers)
        assert layers[0]["share"] > 0.9 and layers[0]["kept_in_float"] == [INFLATED_LAYER, "hidden_b"]
        assert {row["name"] for row in layers} == {INFLATED_LAYER, "hidden_b", "scores"}
        assert validation["suggested_float"][0] == INFLATED_LAYER
        assert validation["explain"]["measured"] == 3 and validation["explain"]["int8_error"] > 0.1
    assert artifacts["model.int8.onnx"]["target"]["weight_bits"] in (7, 8)


@pytest.mark.slow
def test_max_drop_1_repairs_both_formats_within_a_point_and_small(inflated, tmp_path):
    out = tmp_path / "out"
    result = invoke("convert", inflated / "model.keras", "--int8", "--explain", "--max-drop", "1", "-o", out)
    assert result.exit_code == 0, result.output
    assert "--explain: model.int8.tflite" in result.stdout and "repaired: (" in result.stdout
    artifacts = _by_path(json.loads((out / "manifest.json").read_text()))
    for fmt in ("tflite", "onnx"):
        entry, fp32 = artifacts[f"model.int8.{fmt}"], artifacts[f"model.fp32.{fmt}"]
        validation = entry["validation"]
        assert validation["passed"] is True and validation["eval"]["drop_points"] <= 1.0, validation["eval"]
        assert validation["gate"].startswith("accuracy within 1 pt of the original on")
        assert entry["bytes"] <= 0.8 * fp32["bytes"], (entry["bytes"], fp32["bytes"])
        repair = entry["repair"]
        assert repair["rung"] in ("a", "b", "c", "d") and repair["before"]["drop_points"] > 10
        assert repair["after"]["drop_points"] <= 1.0 and repair["tried"][0]["rung"] == "0"
        assert entry["quantization"] == "int8"
        assert bool(entry.get("mixed")) == (repair["rung"] in ("c", "d"))
        assert validation["layers"][0]["name"] == INFLATED_LAYER


@pytest.mark.slow
def test_without_keras_the_ladder_reaches_mixed_precision_and_says_so(inflated, tmp_path):
    """A SavedModel has no Keras layers to equalize: the ladder climbs to 16-bit activations or float layers, and
    the manifest labels the artifact as mixed, the layers named by the graph's own op names."""
    import keras
    from edgeml_converters import convert

    saved = tmp_path / "saved"
    keras.saving.load_model(inflated / "model.keras").export(str(saved), verbose=False)
    manifest = convert(saved, tmp_path / "out", isolate=False, modes=("fp32", "int8"), max_drop=1.0,
                       calibration=inflated / "calibration.npz", eval_data=inflated / "test.npz")
    artifacts = _by_path(manifest)
    for fmt in ("tflite", "onnx"):
        entry = artifacts[f"saved.int8.{fmt}"]
        repair = entry["repair"]
        assert entry["validation"]["passed"] is True and repair["rung"] in ("c", "d"), repair
        skipped = next(step for step in repair["tried"] if step["rung"] == "b")
        assert skipped["result"] == "skipped" and "not a Keras model" in skipped["what"]
        assert entry["mixed"] and all(item["precision"] for item in entry["mixed"])
        assert repair["kept_higher_precision"] == [item["layer"] for item in entry["mixed"]]
        assert "p50_ms" in repair and "fp32_p50_ms" in repair


def test_target_weight_range_follows_the_named_device():
    from edgeml_converters.onnx_quantize import target_weight_range

    assert target_weight_range("aarch64").reduce_range is False  # ARM kernels accumulate in int32
    assert target_weight_range("armv7l").to_dict()["weight_bits"] == 8
    other_x86 = "x86_64" if __import__("platform").machine() != "x86_64" else "i686"
    assert target_weight_range(other_x86).reduce_range is True  # flags unknown: the safe 7 bits
    assert target_weight_range(None) == weight_range_for()  # no device: this host


def test_convert_for_a_device_records_its_onnx_weight_bits(models, tmp_path):
    """`edgeml convert --device rpi4`: the ONNX int8 file is made for the Pi's ARM CPU (8-bit weights), whatever
    this host is, and the manifest says why."""
    out = tmp_path / "out"
    result = invoke("convert", models.paths.sequential, "--int8", "--to", "onnx", "--calibration",
                    models.paths.features, "--device", "rpi4", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    entry = next(a for a in json.loads(result.stdout)["artifacts"] if a["quantization"] == "int8")
    assert entry["target"]["weight_bits"] == 8 and entry["target"]["reduce_range"] is False
    assert entry["target"]["reason"].startswith("ARM")
    refused = invoke("convert", models.paths.sequential, "--device", "no-such-board", "-o", tmp_path / "x")
    assert refused.exit_code == 2 and "unknown device 'no-such-board'" in refused.stderr
