"""`convert()`: load, convert to every requested format and mode, validate, write the manifest."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from edgeml_runtime import ModelLoadError
from edgeml_runtime.formats import LABELS_FILE, MANIFEST_FILE, RECOMMENDED_KEY, TARGETS
from edgeml_runtime.progress import ProgressCallback, report

from edgeml_converters import calibration as data_sets
from edgeml_converters import precision
from edgeml_converters.data_plan import DataPlan, plan_data
from edgeml_converters.errors import CalibrationError, ConversionError, GatesFailed, IncompleteConversion
from edgeml_converters.manifest import artifact_entry, file_sha256, manifest_dict, write_json
from edgeml_converters.modes import Mode, artifact_name, artifact_stem
from edgeml_converters.options import ConvertOptions
from edgeml_converters.output_dir import default_output_dir, publish, remove_staging, start_staging
from edgeml_converters.validation import check_outputs, run_batches

__all__ = ["GatesFailed", "build_artifacts", "convert"]

RECOMMEND_BUDGET_S = 1.0  # timed rounds over every passing artifact and thread count, loading aside


def convert(source, output_dir=None, options: Optional[ConvertOptions] = None, *,
            progress: ProgressCallback = None, isolate: bool = True, **option_values) -> dict:
    """Convert `source` (.keras, .h5 or SavedModel dir) and return the manifest (also written to
    `output_dir/manifest.json`; default `<stem>-edgeml/` next to the model).

    What to make comes as `options` (a `ConvertOptions`) or as its fields by name, e.g.
    `convert("model.keras", "out", formats=("tflite",), modes=("fp32", "int8"), calibration="x.npy")`;
    names given next to `options` override its values. Artifacts that miss their validation gate are
    kept, marked `passed: false`, and a `GatesFailed` (a CheckFailed) is raised after everything is
    written. When the TFLM sources (`formats` "tflm") cannot be made for the model (an operator TFLM lacks),
    the other artifacts and their manifest are written and an `IncompleteConversion` naming the cause is
    raised. `progress` receives `edgeml_runtime.progress.ProgressEvent`s.

    `isolate` runs the conversion in a child process (survives converter crashes); `isolate=False`
    converts in this process, which is faster to start when TensorFlow is already imported.
    """
    if options is None:
        options = ConvertOptions(**option_values)
    elif option_values:
        options = options.replace(**option_values)
    source_path = Path(source).expanduser().resolve()
    if not source_path.exists():
        raise ModelLoadError(f"model not found: {source}")
    calibration, note = _calibration_choice(options, source_path)
    if note:
        report(progress, "calibrate", note, level="note")
    options = options.replace(calibration=calibration)
    if "tflm" in options.formats:
        from edgeml_converters.tflm import require_tflite_micro

        require_tflite_micro()  # the install hint now, not after the TFLite conversions
    out = Path(output_dir).expanduser().resolve() if output_dir else default_output_dir(source_path)
    staging = start_staging(out)
    request = {"source_path": source_path, "staging": staging, "options": options}
    try:
        try:
            if isolate:
                from edgeml_converters.isolation import run_isolated

                manifest = run_isolated(build_artifacts, request, progress, step=f"loading {source_path.name}")
            else:
                manifest = build_artifacts(**request, progress=progress)
        except IncompleteConversion as incomplete:
            _recommend(incomplete.manifest, staging, options, progress)
            publish(staging, out)  # what could be made is kept, as with a failed gate
            incomplete.output_dir = out
            raise
        _recommend(manifest, staging, options, progress)
        publish(staging, out)
    finally:
        remove_staging(staging)
    report(progress, "write", f"wrote {len(manifest['artifacts'])} artifact(s) and {MANIFEST_FILE} to {out}")
    _raise_for_failed_gates(manifest, out)
    return manifest


def _recommend(manifest: dict, staging: Path, options: ConvertOptions, progress: ProgressCallback) -> None:
    """Measure every passing artifact in `staging` on this machine and write the fastest into its manifest (`null`
    when none passed). Runs here, in the parent: the child's TensorFlow would share the cores being measured."""
    if not options.recommend:
        return
    from edgeml_runtime import recommend

    found = recommend.candidates(staging, manifest) if manifest["artifacts"] else []
    chosen = None
    if found:
        rows = recommend.measure(found, budget_s=RECOMMEND_BUDGET_S, progress=progress)
        chosen = recommend.recommendation(rows, recommend.machine_facts())
    manifest[RECOMMENDED_KEY] = chosen
    write_json(staging / MANIFEST_FILE, manifest)
    report(progress, "bench", _recommendation_note(chosen, found), level="note")


def _recommendation_note(chosen: Optional[dict], found: list) -> str:
    if chosen is not None:
        threads = f"{chosen['threads']} thread{'' if chosen['threads'] == 1 else 's'}"
        return (f"recommended: {chosen['path']}, {threads}, p50 {chosen['p50_ms']:.3g} ms on this machine (fastest "
                "passing; ties go to the smaller file); `edgeml select` measures again on the device")
    if not found:
        return "no recommended artifact: none passed validation"
    return "no recommended artifact: no passing artifact could be run on this machine to measure it"


def _calibration_choice(options: ConvertOptions, source_path: Path):
    """The calibration data to use, and a note to show when it was found next to the model."""
    if options.calibration is not None:
        return options.calibration, None
    found = data_sets.auto_calibration_file(source_path)
    if found is not None:
        return found, f"using calibration data found next to the model: {found}"
    needing = [mode.value for mode in options.modes if mode.needs_calibration]
    if needing:
        raise CalibrationError(
            f"{'/'.join(needing)} quantization needs representative data: a few hundred real inputs the "
            "converter runs to measure each layer's value range. Pass --calibration PATH (.npy, .npz, a "
            "folder of images or a .csv), or --calibration synthetic to use random inputs (less accurate)"
        )
    return None, None


def _raise_for_failed_gates(manifest: dict, out: Path) -> None:
    # Flex artifacts cannot be validated here; the user allowed them explicitly (--allow-flex) and was
    # warned, so they are marked `passed: false` with the reason but do not fail the run.
    failed = [entry for entry in manifest["artifacts"]
              if not entry["validation"]["passed"] and "error" not in entry["validation"]]
    if not failed:
        return
    details = "; ".join(
        f"{entry['path']} (cosine {entry['validation']['cosine']:.4f}, top-1 "
        f"{_percent(entry['validation']['top1_agreement'])}, decisive "
        f"{_percent(entry['validation'].get('decisive_top1_agreement'))}{_quanta(entry['validation'])}"
        f"{_budget(entry)}, needs {entry['validation']['gate']}{_repair_tried(entry)})"
        for entry in failed
    )
    raise GatesFailed(
        f"{len(failed)} artifact(s) failed validation: {details}. Files and manifest kept in {out} for "
        "inspection; loosen the gates with --min-cosine / --min-agreement / --fp32-tolerance (or the budget with "
        "--max-drop) if acceptable; --explain shows which layers cost the accuracy",
        manifest, out,
    )


def _budget(entry: dict) -> str:
    evaluation = entry["validation"].get("eval")
    if not evaluation:
        return ""
    return (f", {evaluation['metric']} {evaluation['artifact']:.1%} ({evaluation['drop_points']:.1f} pt below "
            "the original)")


def _repair_tried(entry: dict) -> str:
    repair = entry.get("repair")
    if not repair or repair.get("rung"):
        return ""
    rungs = sorted({step["rung"] for step in repair.get("tried", []) if step.get("result") != "skipped"})
    return f"; repair rungs tried: {', '.join(rungs)}, none met it"


def _quanta(validation: dict) -> str:
    """', TFLM vs LiteRT N quanta' for a TFLM artifact."""
    if validation.get("max_quanta_diff") is None:
        return ""
    return f", TFLM vs LiteRT {validation['max_quanta_diff']} quanta"


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


# --- the conversion itself (runs in the child process when isolated) ---------------------------------


def build_artifacts(*, source_path: Path, staging: Path, options: ConvertOptions,
                    progress: ProgressCallback = None) -> dict:
    """Convert into `staging` and write its manifest there; returns the manifest."""
    from edgeml_converters.loading import load_source

    source = load_source(source_path, unsafe=options.unsafe)
    try:
        # Reported once loaded: a model that does not load gives its error alone, not after a step line.
        report(progress, "load", f"loaded {source_path.name} with {source.loader}")
        for note in source.notes:
            report(progress, "load", note, level="note")
        plan = plan_data(source, options, labels=_labels_json(source_path), model_folder=_model_folder(source_path),
                         progress=progress)
        validation_set = plan.validation
        report(progress, "validate", f"running the original model on {validation_set.samples} validation samples")
        reference = run_batches(source.predict, source.inputs[0].shape[0], validation_set)
        context = _Context(source, staging, validation_set, reference, options, plan.calibration, progress,
                           synthetic=plan.synthetic_validation, plan=plan)
        try:
            if source.kind == "onnx":
                artifacts, tflm_error = _from_onnx_source(context)
            else:
                artifacts, tflm_error = _from_tensorflow_source(context)
        finally:
            context.close()
        manifest = manifest_dict(source, artifacts, plan.manifest_entry(), _copy_labels(source_path, staging))
        write_json(staging / MANIFEST_FILE, manifest)
        if tflm_error is not None:
            raise IncompleteConversion(str(tflm_error), manifest)
        return manifest
    finally:
        source.cleanup()


def _from_tensorflow_source(context: _Context) -> Tuple[List[dict], Optional[ConversionError]]:
    """(artifacts, why the TFLM sources could not be made or None) of a Keras/SavedModel source."""
    options = context.options
    artifacts, tflm_error = [], None
    if "tflite" in options.formats:
        artifacts += _tflite_artifacts(context)
    if "tflm" in options.formats:
        try:
            artifacts.append(_tflm_artifact(context, artifacts))
        except ConversionError as error:  # the model is fine for LiteRT/ONNX, not for TFLM: make the rest
            tflm_error = error
            context.report("tflm", "no TensorFlow Lite Micro sources for this model (the reason follows); "
                                   "making the other artifacts", level="warning")
    if "onnx" in options.formats or "ort" in options.formats:
        artifacts += _onnx_artifacts(context)
    return artifacts, tflm_error


def _from_onnx_source(context: _Context) -> Tuple[List[dict], Optional[ConversionError]]:
    """(artifacts, why a requested TFLite/TFLM output could not be made or None) of an ONNX source. The ONNX
    artifacts come first: the TFLite route (onnx2tf, its own environment) may stop at an operator, and then what
    was made is still written (IncompleteConversion, as for TFLM)."""
    options, source = context.options, context.source
    artifacts: List[dict] = []
    if "onnx" in options.formats or "ort" in options.formats:
        artifacts += _onnx_artifacts(context)
    if "tflite" not in options.formats:
        return artifacts, None
    quantized = source.onnx_facts["quantized"]
    if quantized:
        if not artifacts:
            raise ConversionError(f"{source.path.name} is already quantized ({quantized}): TFLite files are made from "
                                  "float models; convert the float model, or pass --to onnx to copy this one as is")
        context.report("export", f"no TFLite files: {source.path.name} is already quantized ({quantized}); convert "
                                 "its float model to get TFLite files", level="warning")
        return artifacts, None
    try:
        made, error = _tflite_from_onnx(context)
    except ConversionError as failure:  # no tool environment, or an operator onnx2tf cannot convert
        context.report("export", "no TFLite files for this model (the reason follows); the ONNX artifacts are "
                                 "written", level="warning")
        return artifacts, failure
    return artifacts + made, error


def _tflite_from_onnx(context: _Context) -> Tuple[List[dict], Optional[ConversionError]]:
    """TFLite artifacts (and TFLM sources) of an ONNX source: onnx2tf writes a SavedModel, our exporter converts it
    like a Keras model's, with the same data and reference seen in the SavedModel's layout (onnx_layout)."""
    from edgeml_converters import onnx2tf_route
    from edgeml_converters.loading import saved_model_source
    from edgeml_converters.onnx_layout import make_view

    problem = onnx2tf_route.tool_env_problem()
    if problem:
        raise ConversionError(problem)
    options, source = context.options, context.source
    entries: List[dict] = []
    tflm_error = None
    with tempfile.TemporaryDirectory(prefix="edgeml-onnx2tf-") as work:
        converted = onnx2tf_route.onnx_to_saved_model(source.onnx_path, Path(work), keep_layout=options.keep_layout,
                                                      progress=context.progress)
        saved = saved_model_source(converted.saved_model_dir)  # its signature: the names and shapes TFLite gets
        view = make_view(source, saved.inputs, saved.outputs, converted.input_perms, converted.output_perms,
                         converted.signature_inputs, converted.signature_outputs)
        plan = view.plan(context.plan)
        seen = _Context(view.source(source, converted.saved_model_dir, converted.signature_key, keep_alive=saved),
                        context.staging, plan.validation, view.results(context.reference), options, plan.calibration,
                        context.progress, synthetic=context.synthetic, plan=plan)
        try:
            entries = _tflite_artifacts(seen)
            if "tflm" in options.formats:
                try:
                    entries.append(_tflm_artifact(seen, entries))
                except ConversionError as error:
                    tflm_error = error
                    context.report("tflm", "no TensorFlow Lite Micro sources for this model (the reason follows); "
                                           "making the other artifacts", level="warning")
        finally:
            seen.close()
            saved.cleanup()
    layouts = view.layouts()
    route = {"onnx2tf": converted.tool_versions.get("onnx2tf"), "tensorflow": converted.tool_versions.get("tensorflow")}
    for entry in entries:
        entry["converted_with"] = route  # the ONNX -> SavedModel step (its own environment)
        if layouts:
            entry["layout"] = layouts
    transposed = view.transposed_inputs()
    if transposed and entries:
        context.report("export", f"the TFLite files take {transposed}: TFLite kernels want channels last; feed them "
                                 "so (the manifest's `layout` says it), or convert with --keep-layout", level="note")
    return entries, tflm_error


class _Context:
    """What every artifact's conversion and validation needs."""

    def __init__(self, source, staging, validation_set, reference, options: ConvertOptions, calibration_set,
                 progress: ProgressCallback, synthetic: bool, plan: Optional[DataPlan] = None):
        self.source, self.staging, self.validation_set = source, staging, validation_set
        self.reference, self.options, self.calibration_set = reference, options, calibration_set
        self.progress, self.synthetic, self.plan = progress, synthetic, plan
        self.gates = options.gates()
        self._shared = None

    @property
    def shared(self):
        """What the int8 artifacts share for --explain and repairs (precision.Shared), made on first use."""
        if self._shared is None:
            self._shared = precision.Shared(self)
        return self._shared

    def judge(self):
        return self.shared.judge()

    def noise(self, names):
        return self.shared.noise(names)

    def equalized(self):
        return self.shared.equalized()

    def equalized_onnx(self):
        return self.shared.equalized_onnx()

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()

    def report(self, stage: str, message: str, **counts_and_level) -> None:
        report(self.progress, stage, message, **counts_and_level)

    def entry(self, path: Path, target: str, mode: Mode, extra=None) -> dict:
        """Validate the artifact at `path` against the original and describe it for the manifest."""
        from edgeml_converters.validation import not_runnable, validate

        fmt = TARGETS[target].format
        self.report("validate", f"validating {path.name}")
        if extra and extra.get("flex_ops"):
            # The slim runtime cannot run Flex ops (and TF's own interpreter no longer links the Flex
            # delegate), so this artifact cannot be checked here: say so instead of guessing.
            reason = f"not validated: needs Flex ops {', '.join(extra['flex_ops'])}, which LiteRT cannot run"
            result = not_runnable(self.validation_set, reason)
            return artifact_entry(self.staging, path, fmt, mode, _tensorflow_lite_specs(path), result, extra)
        result = validate(path, self.reference, self.validation_set, self.gates[mode], synthetic=self.synthetic)
        if self.synthetic:
            result["synthetic"] = True  # random inputs: what the figures are worth
        return artifact_entry(self.staging, path, fmt, mode, _runtime_model(path), result, extra)


def _tflite_artifacts(context: _Context) -> List[dict]:
    from edgeml_converters.tflite_export import export_tflite

    options = context.options
    entries = []
    for mode in options.modes:
        path = context.staging / _file_name(context, "tflite", mode)
        context.report("export", f"converting to TFLite {mode}")
        if mode is Mode.INT8 and not options.allow_flex:  # calibrated once: --explain and repairs reuse it
            outcome = precision.tflite_int8(context, path)
            entries.append(precision.apply_outcome(context.entry(path, "tflite", mode, outcome.extra), outcome))
            continue
        flex_ops = export_tflite(
            context.source.saved_model_dir, context.source.signature_key, mode, path,
            calibration=context.calibration_set, float_io=options.float_io, allow_flex=options.allow_flex,
            progress=context.progress,
        )
        if flex_ops:
            context.report("export", f"{path.name} needs Flex ops {', '.join(flex_ops)}; LiteRT and tflite-runtime "
                           "on a device cannot run it (it needs TensorFlow's Flex delegate)", level="warning")
        entries.append(context.entry(path, "tflite", mode, {"flex_ops": flex_ops} if flex_ops else None))
    return entries


def _tflm_artifact(context: _Context, tflite_entries: List[dict]) -> dict:
    """TensorFlow Lite Micro sources around the int8 .tflite, checked like it: the TFLM interpreter, in the arena
    the sources declare, runs the validation data and is judged against the original by the int8 gate; TFLM and
    LiteRT must also agree within `tflm.QUANTA_TOLERANCE` quanta on those inputs."""
    from edgeml_converters.tflm import TflmInterpreter, export_tflm

    tflite = context.staging / next(e["path"] for e in tflite_entries if e["quantization"] == Mode.INT8)
    data = context.validation_set
    context.report("export", f"writing TensorFlow Lite Micro sources for {tflite.name}")
    artifact = export_tflm(tflite, output_dir=context.staging, samples=data.arrays, samples_source=data.source,
                           progress=context.progress)
    context.report("validate", f"validating {artifact['path']} (the TFLM interpreter, "
                               f"{artifact['arena_bytes']}-byte arena)")
    interpreter = TflmInterpreter(tflite.read_bytes(), artifact["arena_bytes"])
    outputs = run_batches(interpreter.run, interpreter.inputs[0].shape[0], data)
    against_original = check_outputs(context.reference, outputs, data, context.gates[Mode.INT8],
                                     synthetic=context.synthetic, runner=artifact["validation"]["runner"])
    return _tflm_entry(context.staging, artifact, against_original)


def _tflm_entry(staging: Path, artifact: dict, against_original: dict) -> dict:
    """The manifest entry: `bytes` and `sha256` describe `path` (the .cc) like every artifact's, `model_bytes` the
    embedded flatbuffer (what takes flash); `validation` holds the comparison with the original and, beside
    it, TFLM against LiteRT in quanta."""
    against_litert = artifact["validation"]
    validation = {
        **against_original,
        **{key: against_litert[key] for key in ("max_quanta_diff", "mean_quanta_diff", "exact_fraction",
                                                "litert_max_abs_diff", "tolerance_quanta", "litert")},
        "passed": bool(against_original["passed"] and against_litert["passed"]),
        "gate": f"{against_original['gate']}, TFLM vs LiteRT <= {against_litert['tolerance_quanta']} quanta",
    }
    source_file = staging / artifact["path"]
    entry = {}
    for key, value in artifact.items():
        entry[key] = value
        if key == "model":
            entry["model_bytes"] = artifact["bytes"]
    entry.update(bytes=source_file.stat().st_size, sha256=file_sha256(source_file), validation=validation)
    return entry


def _onnx_artifacts(context: _Context) -> List[dict]:
    from edgeml_converters import onnx_export, onnx_quantize

    options, formats = context.options, context.options.formats
    entries = []
    with tempfile.TemporaryDirectory(prefix="edgeml-onnx-") as scratch:
        base = Path(scratch) / _file_name(context, "onnx", Mode.FP32)
        modes, source_extra = options.modes, {}
        if context.source.kind == "onnx":  # the checked source is the fp32 base
            used_opset, modes, source_extra = _onnx_source_base(context, base)
        else:
            context.report("export", "converting to ONNX (tf2onnx)")
            used_opset = onnx_export.export_onnx(context.source.saved_model_dir, context.source.signature_key, base,
                                                 opset=options.opset, frozen_graph=context.source.frozen_graph)
        for mode in modes:
            if not mode.in_onnx:
                context.report("export", f"{mode} is TFLite-only (ONNX Runtime has no int16-activation kernels); "
                               "no ONNX file for it", level="note")
                continue
            onnx_path = (context.staging if "onnx" in formats else Path(scratch)) / _file_name(context, "onnx", mode)
            context.report("quantize", f"making ONNX {mode}")
            outcome = None
            if mode is Mode.FP32 or source_extra.get("source_quantized"):  # a quantized source: copied as it is
                shutil.copyfile(base, onnx_path)
            elif mode is Mode.FP16:
                onnx_export.to_fp16(base, onnx_path)
            elif mode is Mode.DYNAMIC:
                onnx_quantize.quantize_dynamic_int8(base, onnx_path)
            elif mode is Mode.INT8:  # calibrated once: --explain and repairs reuse it
                outcome = precision.onnx_int8(context, base, onnx_path, Path(scratch))
            else:
                onnx_quantize.quantize_static_int8(base, onnx_path, context.calibration_set, progress=context.progress)
            extra = {"opset": used_opset, **source_extra, **(outcome.extra if outcome else {})}
            if "onnx" in formats:
                entries.append(precision.apply_outcome(context.entry(onnx_path, "onnx", mode, extra), outcome))
            if "ort" in formats:
                ort_path = context.staging / _file_name(context, "ort", mode)
                context.report("export", f"making {ort_path.name} (ONNX Runtime Mobile)")
                onnx_export.to_ort(onnx_path, ort_path)
                entries.append(precision.apply_outcome(context.entry(ort_path, "ort", mode, extra), outcome))
    return entries


def _onnx_source_base(context: _Context, base: Path):
    """(opset, modes to make, extra manifest fields) with the ONNX source's checked fp32 model written to `base`.
    An already quantized source is not quantized again: its one artifact is the source itself, under its mode."""
    from edgeml_converters.onnx_layout import layout_entry

    source, options = context.source, context.options
    shutil.copyfile(source.onnx_path, base)
    facts = source.onnx_facts
    opset = facts["opset"].get("ai.onnx")
    if options.opset is not None and options.opset != opset:
        context.report("export", f"--opset {options.opset} is ignored: the ONNX source keeps its opset {opset}",
                       level="note")
    layout = layout_entry(source.inputs)
    extra = {"layout": layout} if layout else {}
    quantized = facts["quantized"]
    if not quantized:
        return _opset_for_quantization(context, base, opset), options.modes, extra
    context.report("quantize", f"{source.path.name} is already quantized ({quantized}): copied as the {quantized} "
                               "artifact, not quantized again; no other modes are made from it", level="warning")
    return opset, (Mode(quantized),), {**extra, "source_quantized": quantized}


def _opset_for_quantization(context: _Context, base: Path, opset: Optional[int]) -> Optional[int]:
    """The opset of the artifacts: an old-opset source is moved up to the one static int8 (per-channel QDQ) needs,
    when int8 is asked for."""
    from edgeml_converters.onnx_source import MIN_QUANTIZE_OPSET, upgrade_opset

    if opset is None or opset >= MIN_QUANTIZE_OPSET or Mode.INT8 not in context.options.modes:
        return opset
    context.report("quantize", f"the ONNX source has opset {opset}; moved to opset {MIN_QUANTIZE_OPSET} for its "
                               "artifacts (int8 quantization needs it)", level="note")
    upgrade_opset(base, MIN_QUANTIZE_OPSET)
    return MIN_QUANTIZE_OPSET


def _file_name(context: _Context, fmt: str, mode: Mode) -> str:
    """Artifacts are named after their source: `vww_96.keras` -> `vww_96.int8.tflite`."""
    return artifact_name(fmt, mode, artifact_stem(context.source.path))


def _model_folder(source_path: Path) -> Path:
    return source_path if source_path.is_dir() else source_path.parent


def _labels_json(source_path: Path) -> Optional[dict]:
    """The trainer's labels.json next to the model (what it recorded about the inputs), if readable."""
    from edgeml_runtime.documents import DocumentError, read_json_object

    labels = _model_folder(source_path) / LABELS_FILE
    try:
        return read_json_object(labels, LABELS_FILE) if labels.is_file() else None
    except DocumentError:
        return None  # the copy next to the artifacts and the Predictor report it; the range just is not known


def _copy_labels(source_path: Path, staging: Path) -> Optional[dict]:
    """`labels.json` from `edgeml train` travels with the artifacts (the on-device Predictor reads it)."""
    folder = source_path if source_path.is_dir() else source_path.parent
    labels = folder / LABELS_FILE
    if not labels.is_file():
        return None
    shutil.copyfile(labels, staging / LABELS_FILE)
    return {"labels": LABELS_FILE}


def _runtime_model(path: Path):
    import edgeml_runtime

    return edgeml_runtime.load(path)


def _tensorflow_lite_specs(path: Path):
    """Input/output specs of a .tflite the slim runtime cannot load (Flex ops), via tf.lite."""
    from edgeml_runtime.specs import Quantization, TensorSpec

    from edgeml_converters.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    interpreter = tf.lite.Interpreter(model_content=path.read_bytes())

    def spec(details):
        scale, zero_point = details["quantization"]
        shape = tuple(None if d < 0 else int(d) for d in details["shape_signature"])
        quantization = Quantization(float(scale), int(zero_point)) if scale else None
        return TensorSpec(details["name"], shape, np.dtype(details["dtype"]).name, quantization)

    class Specs:
        inputs = [spec(d) for d in interpreter.get_input_details()]
        outputs = [spec(d) for d in interpreter.get_output_details()]

    return Specs
