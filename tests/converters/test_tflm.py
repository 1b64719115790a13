"""TensorFlow Lite Micro export: sources that compile, the arena TFLM's allocator measures, TFLM against LiteRT,
and clean errors for models TFLM cannot run (and for a missing tflite-micro)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="tflite-micro is not installed: pip install 'edgeml-converters[tflm]'")

from edgeml_converters.errors import ConversionError  # noqa: E402
from edgeml_converters.tflm import (  # noqa: E402
    RESOLVER_METHODS,
    TflmInterpreter,
    arena_with_margin,
    export_tflm,
    measure_arena,
    read_model,
)
from edgeml_runtime import BackendNotInstalled, dequantize, formats, quantize  # noqa: E402

from tests.support.int8_models import build_int8_models  # noqa: E402
from tests.support.marks import unavailable  # noqa: E402

FILES = ("{stem}_model_data.cc", "{stem}_model_data.h", "{stem}_ops.h", "{stem}_arena.h", "{stem}_tflm.md")


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory):
    return build_int8_models(tmp_path_factory.mktemp("int8"))


@pytest.fixture(scope="module")
def exported(int8_models, tmp_path_factory):
    """Each int8 model exported into a folder of its own, with its real-valued samples for validation."""
    results = {}
    for name in ("cnn", "mlp"):
        folder = tmp_path_factory.mktemp(name)
        tflite = folder / getattr(int8_models, name).name
        shutil.copy(getattr(int8_models, name), tflite)
        events = []
        artifact = export_tflm(tflite, samples=int8_models.samples[name], progress=events.append)
        results[name] = (folder, tflite, artifact, events)
    return results


def gxx() -> str:
    compiler = shutil.which("g++")
    if compiler is None:
        unavailable("g++ is not installed (apt-get install g++)")
    return compiler


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_export_writes_the_sources_and_a_manifest_entry(exported, name):
    folder, tflite, artifact, events = exported[name]
    stem = tflite.name[:-len(".tflite")]
    names = [pattern.format(stem=stem) for pattern in FILES]
    assert [pattern.format(stem=stem) for pattern in formats.TFLM_FILES] == names
    assert artifact["format"] == "tflm" and artifact["files"] == names and artifact["path"] == names[0]
    assert all((folder / file).is_file() for file in names)
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # temporary names all renamed
    assert artifact["bytes"] == tflite.stat().st_size and artifact["quantization"] == "int8"
    assert artifact["ops"] == sorted(read_model(tflite).ops)
    assert {event.stage for event in events} == {"tflm"}
    assert any("arena" in event.message and event.level == "note" for event in events)


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_tflm_matches_litert_within_two_quanta(exported, int8_models, name):
    validation = exported[name][2]["validation"]
    # TFLM and LiteRT share the int8 reference arithmetic; requantization rounding may differ by a step,
    # rarely two (see QUANTA_TOLERANCE); more would mean a kernel or an export bug.
    assert validation["max_quanta_diff"] <= 2 and validation["passed"]
    assert validation["samples"] == len(int8_models.samples[name])
    assert validation["litert"].startswith("edgeml_runtime/")


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_arena_is_the_allocators_figure_plus_a_bounded_margin(exported, name):
    folder, tflite, artifact, _ = exported[name]
    data = tflite.read_bytes()
    measured = measure_arena(data).required_bytes
    arena = artifact["arena_bytes"]
    assert artifact["arena"]["measured_bytes"] == measured
    assert measured <= arena <= 1.5 * measured + 4096 and arena % 16 == 0
    assert arena == arena_with_margin(measured)
    header = (folder / artifact["files"][3]).read_text()
    assert re.search(rf"kTensorArenaSize = {arena};", header)
    assert re.search(rf"kTensorArenaMeasuredBytes = {measured};", header)
    # The figure is TFLM's own minimum: the model sets up in exactly that arena and not in 16 bytes less.
    TflmInterpreter(data, measured)
    with pytest.raises(ConversionError, match="could not set the model up"):
        TflmInterpreter(data, measured - 16)


def test_model_data_compiles_standalone_and_holds_the_model(exported, tmp_path):
    compiler = gxx()
    folder, tflite, artifact, _ = exported["cnn"]
    namespace = artifact["op_resolver"]["namespace"]
    source = folder / artifact["files"][0]
    subprocess.run([compiler, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-c", str(source), "-o",
                    str(tmp_path / "model_data.o")], check=True, capture_output=True, timeout=120)
    text = source.read_text()
    assert "alignas(16) const unsigned char kModelData[]" in text
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", text)) == tflite.read_bytes()
    # Linked into a program, the array is 16-byte aligned and its length is the file's.
    main = tmp_path / "main.cc"
    main.write_text(f'#include <cstdint>\n#include "{artifact["files"][1]}"\n#include "{artifact["files"][3]}"\n'
                    "int main() {\n"
                    f"  auto address = reinterpret_cast<std::uintptr_t>({namespace}::kModelData);\n"
                    f"  return (address % 16 == 0 && {namespace}::kModelDataLen == {tflite.stat().st_size}u\n"
                    f"          && {namespace}::kTensorArenaSize >= {namespace}::kTensorArenaMeasuredBytes) ? 0 : 1;\n"
                    "}\n")
    subprocess.run([compiler, "-std=c++17", "-Wall", "-Werror", "-I", str(folder), str(main),
                    str(tmp_path / "model_data.o"), "-o", str(tmp_path / "check")], check=True, capture_output=True,
                   timeout=120)
    assert subprocess.run([str(tmp_path / "check")], timeout=30).returncode == 0


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_ops_header_registers_exactly_the_models_operators(exported, tmp_path, name):
    folder, _, artifact, _ = exported[name]
    header = (folder / artifact["files"][2]).read_text()
    methods = re.findall(r"resolver\.(Add\w+)\(\)", header)
    assert methods == [RESOLVER_METHODS[op] for op in artifact["ops"]] and len(set(methods)) == len(methods)
    assert f"constexpr unsigned int kOpCount = {len(methods)};" in header
    assert "tflite::MicroMutableOpResolver<kOpCount>" in header
    # The pip package ships no TFLM headers: compile against a stand-in resolver that has every method of the
    # table (the table itself mirrors TFLM's micro_mutable_op_resolver.h). This checks the header's C++.
    stub = tmp_path / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h"
    stub.parent.mkdir(parents=True)
    adds = "\n".join(f"  TfLiteStatus {method}() {{ return ++count_ <= N ? kTfLiteOk : kTfLiteError; }}"
                     for method in sorted(set(RESOLVER_METHODS.values())))
    stub.write_text("#pragma once\nenum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 };\nnamespace tflite {\n"
                    "template <unsigned int N> class MicroMutableOpResolver {\n public:\n"
                    f"{adds}\n private:\n  unsigned int count_ = 0;\n}};\n}}  // namespace tflite\n")
    main = tmp_path / "main.cc"
    ns = artifact["op_resolver"]["namespace"]
    main.write_text(f'#include "{artifact["files"][2]}"\n'
                    f"int main() {{ {ns}::OpResolver resolver; return {ns}::RegisterOps(resolver); }}\n")
    compiler = gxx()
    subprocess.run([compiler, "-std=c++17", "-Wall", "-Werror", "-I", str(tmp_path), "-I", str(folder), str(main),
                    "-o", str(tmp_path / "ops")], check=True, capture_output=True, timeout=120)
    assert subprocess.run([str(tmp_path / "ops")], timeout=30).returncode == 0  # N is exactly enough


def test_usage_note_names_the_setup_and_the_figures(exported):
    folder, tflite, artifact, _ = exported["cnn"]
    note = (folder / artifact["files"][4]).read_text()
    ns = artifact["op_resolver"]["namespace"]
    for needle in (f"{ns}::RegisterOps(resolver)", f"{ns}::kTensorArenaSize", "AllocateTensors()", "Invoke()",
                   f"{artifact['arena_bytes']:,}", "vendor's toolchain"):
        assert needle in note, needle


def test_an_operator_tflm_lacks_is_a_clean_error(int8_models, tmp_path):
    tflite = tmp_path / "gelu.int8.tflite"
    shutil.copy(int8_models.gelu_mlp, tflite)
    with pytest.raises(ConversionError, match=r"TensorFlow Lite Micro has no kernel for GELU"):
        export_tflm(tflite)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gelu.int8.tflite"]  # nothing written


def test_tflm_aborting_on_a_model_is_a_clean_error(int8_models, tmp_path):
    # TFLM stops the process when a kernel's check fails; the measurement runs in a child, so this process lives.
    tflite = tmp_path / "dead.int8.tflite"
    shutil.copy(int8_models.dead_softmax, tflite)
    with pytest.raises(ConversionError, match=r"TensorFlow Lite Micro (stopped by SIG\w+|exited with status "
                                              r"\d+) while setting up dead.int8.tflite: .* failed a check"):
        export_tflm(tflite)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dead.int8.tflite"]


def test_a_float_model_is_refused(int8_models, tmp_path):
    with pytest.raises(ConversionError, match=r"not full-integer quantized .* convert with --int8"):
        export_tflm(int8_models.fp32_mlp, output_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_interpreter_quantizes_like_the_runtime(int8_models):
    data = int8_models.mlp.read_bytes()
    interpreter = TflmInterpreter(data, arena_with_margin(measure_arena(data).used_bytes))
    samples = int8_models.samples["mlp"][:5]
    outputs = interpreter.run(samples)[interpreter.outputs[0].name]
    assert outputs.shape == (5, 4) and outputs.dtype == np.float32
    assert np.allclose(outputs.sum(axis=1), 1.0, atol=0.05)  # softmax probabilities, dequantized
    # Integers in, integers out with raw=True: quantizing beforehand gives the same result.
    quantized = quantize(samples, interpreter.inputs[0].quantization, np.int8)
    raw = interpreter.run(quantized, raw=True)[interpreter.outputs[0].name]
    assert raw.dtype == np.int8
    assert np.array_equal(dequantize(raw, interpreter.outputs[0].quantization), outputs)


def test_without_samples_random_integers_feed_the_comparison(int8_models, tmp_path):
    artifact = export_tflm(int8_models.mlp, output_dir=tmp_path, sample_count=4)
    validation = artifact["validation"]
    assert validation["samples"] == 4 and validation["data"] == "random int8 inputs, seed 0"
    assert validation["max_quanta_diff"] <= 2  # see QUANTA_TOLERANCE
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(artifact["files"])


def test_source_targets_are_not_runtime_formats():
    assert "tflm" in formats.SOURCE_TARGETS and "tflm" not in formats.TARGETS
    assert formats.SOURCE_TARGETS["tflm"].suffix not in formats.SUFFIX_FORMATS


def test_without_tflite_micro_the_error_says_what_to_install(int8_models, monkeypatch, tmp_path):
    for module in [name for name in sys.modules if name == "tflite_micro" or name.startswith("tflite_micro.")]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, "tflite_micro", None)
    with pytest.raises(BackendNotInstalled, match=r"pip install 'edgeml-converters\[tflm\]'"):
        export_tflm(int8_models.mlp, output_dir=tmp_path)
