"""int8 that keeps its accuracy: `--explain` and the repair ladder, for the TFLite and ONNX int8 artifacts.

Every int8 artifact is judged against a budget: with `--max-drop PTS`, the points of accuracy (labelled evaluation
data: `--eval-data`, or the trainer's test.npz next to the model), else of top-1 agreement with the original (cosine
for outputs that are not class scores) it may lose; without it, its validation gate. When plain int8 misses the
budget, a ladder of repairs is climbed and the first rung that meets it (and is not slower than the fp32 file of the
same format) is shipped:

    (0) settings that fit the target: ONNX 7-bit weights only where int8 kernels saturate (x86 without VNNI), decided
        for the plain int8 already and recorded; TFLite int8 kernels accumulate in int32, nothing to choose
    (a) better calibration: more samples; for ONNX also percentile and entropy ranges instead of min/max
    (b) cross-layer equalization of ReLU-connected Dense/Conv pairs on a copy of the float model: still all int8
    (c) 16-bit activations: ONNX on the most sensitive layers' outputs (TensorQuantOverrides); TFLite has no per-op
        int16 in its converter, so its rung is int16x8 for the whole model (labelled as such)
    (d) the fewest sensitive layers kept in float (from the --explain ranking)

Rungs (c) and (d) change the artifact's kind, which the manifest says: `mixed` lists what is not int8. They are
skipped for TFLite when TFLM sources are made from the .tflite (TFLM runs full-int8 models).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np

from edgeml_converters.calibration import Dataset
from edgeml_converters.errors import ConversionError
from edgeml_converters.explain import Explainer, LayerNames, Trial, onnx_graph, quantization_noise, tflite_graph
from edgeml_converters.modes import Mode, artifact_name, artifact_stem
from edgeml_converters.validation import check_outputs, compare_outputs, run_artifact, run_batches, validate

__all__ = ["Outcome", "apply_outcome", "onnx_int8", "tflite_int8"]

MAX_FLOAT_LAYERS = 4  # rung (d) keeps at most this many layers (and the ops reading them) in float
MAX_INT16_LAYERS = 3  # rung (c), ONNX: 16-bit activations on at most this many layers' outputs
# A repaired artifact counts as slower beyond 15% + 10 us more p50: below that, a shared machine's timer noise.
SLOWER_TOLERANCE = 1.15
SLOWER_SLACK_MS = 0.01
EQUALIZED_TOLERANCE = 1e-3  # max |equalized - original| / output range: equalization must not change the model

RUNG_NAMES = {"0": "target settings", "a": "better calibration", "b": "cross-layer equalization",
              "c": "16-bit activations", "d": "layers kept in float"}


# --- what one artifact's treatment adds to its manifest entry ----------------------------------------------------


@dataclass
class Outcome:
    extra: dict = field(default_factory=dict)  # top-level entry fields: target, repair, mixed
    validation: dict = field(default_factory=dict)  # added to the entry's validation: layers, explain, eval
    budget_met: Optional[bool] = None  # with --max-drop: whether the artifact is within it (decides `passed`)
    budget: Optional[str] = None


def apply_outcome(entry: dict, outcome: Optional[Outcome]) -> dict:
    """Merge `outcome` into a manifest entry made by `_Context.entry`. With --max-drop the budget decides `passed`;
    the default gate's verdict stays beside it (`default_gate`)."""
    if outcome is None:
        return entry
    entry.update(outcome.extra)
    validation = entry["validation"]
    validation.update(outcome.validation)
    if outcome.budget_met is not None and "error" not in validation:
        validation["default_gate"] = {"gate": validation.get("gate"), "passed": validation.get("passed")}
        validation["gate"], validation["passed"] = outcome.budget, bool(outcome.budget_met)
    return entry


# --- the judge: one budget for every candidate ---------------------------------------------------------------------


@dataclass
class Assessment:
    validation: dict
    metric: str  # accuracy | top-1 agreement | cosine
    score: float
    original: float
    drop: float  # points lost against the original
    met: bool

    def figures(self) -> dict:
        """Validation figures (cosine, top-1 agreement, gate) and the budget's (its metric, points dropped)."""
        key = {"accuracy": "accuracy", "top-1 agreement": "eval_top1_agreement"}.get(self.metric, "eval_cosine")
        return {"cosine": self.validation["cosine"], "top1_agreement": self.validation["top1_agreement"],
                "gate_passed": self.validation["passed"], key: round(self.score, 6), "drop_points": round(self.drop, 3)}


class Judge:
    """Assesses artifact files against the budget (shared by every int8 artifact of a conversion)."""

    def __init__(self, context):
        self.context = context
        self.gate = context.gates[Mode.INT8]
        self.max_drop = context.options.max_drop
        plan = context.plan
        evaluation = plan.evaluation if plan is not None else None
        if evaluation is not None:
            self.data, self.labels, self.source = evaluation.data, evaluation.labels, evaluation.source
        else:
            self.data, self.labels = context.validation_set, None
            self.source = f"{context.validation_set.source} ({context.validation_set.samples} samples)"
        source = context.source
        self.original = run_batches(source.predict, source.inputs[0].shape[0], self.data)
        self.scores_name = _classifier_output(self.original)
        if self.labels is not None and self.scores_name is not None:
            self.metric = "accuracy"
            self.original_score = float(np.mean(self.original[self.scores_name].argmax(axis=1) == self.labels))
        else:
            self.metric = "top-1 agreement" if self.scores_name is not None else "cosine"
            self.original_score = 1.0

    def describe(self) -> str:
        if self.max_drop is None:
            return f"the int8 validation gate ({self.gate.describe()})"
        return f"{self.metric} within {self.max_drop:g} pt of the original on {self.source}"

    def assess(self, path: Path) -> Assessment:
        context = self.context
        validation = validate(path, context.reference, context.validation_set, self.gate, synthetic=context.synthetic)
        outputs, _ = run_artifact(path, self.data)
        score = self.score(outputs)
        drop = 100.0 * (self.original_score - score)
        met = bool(validation["passed"]) if self.max_drop is None else drop <= self.max_drop + 1e-9
        return Assessment(validation, self.metric, score, self.original_score, drop, met)

    def score(self, outputs: Dict[str, np.ndarray]) -> float:
        if self.metric == "accuracy":
            return float(np.mean(np.asarray(outputs[self.scores_name]).argmax(axis=1) == self.labels))
        if self.metric == "top-1 agreement":
            return float(np.mean(np.asarray(outputs[self.scores_name]).argmax(axis=1)
                                 == self.original[self.scores_name].argmax(axis=1)))
        return float(compare_outputs(self.original, outputs)["cosine"])

    def eval_fields(self, assessment: Assessment) -> dict:
        return {"eval": {"data": self.source, "metric": self.metric, "original": round(assessment.original, 6),
                         "artifact": round(assessment.score, 6), "drop_points": round(assessment.drop, 3)}}


def _classifier_output(outputs: Dict[str, np.ndarray]) -> Optional[str]:
    for name, values in outputs.items():
        if np.ndim(values) == 2 and np.shape(values)[1] >= 2:
            return name
    return None


# --- recipes: how each format makes an int8 variant ----------------------------------------------------------------


class TfliteRecipe:
    fmt, suffix = "tflite", ".tflite"

    def __init__(self, context, source=None, calibration: Optional[Dataset] = None, label: str = "TFLite int8"):
        self.context = context
        self.source = source or context.source
        self.calibration = calibration or context.calibration_set
        self.label = label
        self._calibrated: Optional[bytes] = None

    def calibrated(self) -> bytes:
        from edgeml_converters.tflite_export import calibrate

        if self._calibrated is None:
            self._calibrated = calibrate(self.source.saved_model_dir, self.source.signature_key, self.calibration,
                                         progress=self.context.progress, label=f"calibrating {self.label}")
        return self._calibrated

    def build(self, float_nodes: Sequence[str], destination: Path) -> None:
        from edgeml_converters.tflite_export import quantize_calibrated

        destination.write_bytes(quantize_calibrated(self.calibrated(), float_io=self.context.options.float_io,
                                                    float_ops=float_nodes))

    def graph(self, names: LayerNames):
        return tflite_graph(self.calibrated(), names)


class OnnxRecipe:
    fmt, suffix = "onnx", ".onnx"

    def __init__(self, context, fp32: Path, scratch: Path, *, calibration: Optional[Dataset] = None,
                 method: str = "minmax", tag: str = "plain", weights=None):
        from edgeml_converters.onnx_quantize import StaticQuantizer, prepare, target_weight_range

        self.context = context
        self.weights = weights or target_weight_range(context.options.target_machine)
        folder = scratch / f"onnx-{tag}"
        folder.mkdir(parents=True, exist_ok=True)
        self.prepared = prepare(fp32, folder / "prepared.onnx", progress=context.progress)
        self.quantizer = StaticQuantizer(self.prepared, calibration or context.calibration_set, folder, method=method,
                                         weights=self.weights, progress=context.progress)

    def build(self, float_nodes: Sequence[str], destination: Path, int16_tensors: Sequence[str] = ()) -> None:
        self.quantizer.build(destination, exclude_nodes=float_nodes, int16_tensors=int16_tensors)

    def graph(self, names: LayerNames):
        return onnx_graph(self.prepared, names)


# --- entry points from the pipeline ---------------------------------------------------------------------------------


def tflite_int8(context, path: Path) -> Outcome:
    """Write the TFLite int8 artifact at `path` (plain, or repaired) and say what was done."""
    recipe = TfliteRecipe(context)
    recipe.build((), path)
    fp32 = context.staging / artifact_name("tflite", Mode.FP32, artifact_stem(context.source.path))
    return _finish(context, recipe, path, fp32 if fp32.is_file() else None, target=None)


def onnx_int8(context, fp32: Path, path: Path, scratch: Path) -> Outcome:
    """Write the ONNX int8 artifact at `path` from the fp32 ONNX model `fp32` (plain, or repaired)."""
    recipe = OnnxRecipe(context, fp32, scratch)
    recipe.build((), path)
    return _finish(context, recipe, path, fp32, target=recipe.weights.to_dict(), scratch=scratch)


def _finish(context, recipe, path: Path, fp32: Optional[Path], *, target: Optional[dict],
            scratch: Optional[Path] = None) -> Outcome:
    outcome = Outcome()
    if target is not None:
        outcome.extra["target"] = target
    judge = context.judge()
    before = judge.assess(path)
    worker = _Worker(context, recipe, path, fp32, judge, scratch)
    try:
        if context.options.explain:
            outcome.validation.update(worker.explain_fields())
        after = before
        if not before.met and context.options.repair:
            after, repair, mixed = worker.climb(before)
            outcome.extra["repair"] = repair
            if mixed:
                outcome.extra["mixed"] = mixed
            if "explain" in outcome.validation and repair.get("rung"):
                outcome.validation["explain"]["measured_on"] = "the plain int8, before the repair"
        elif not before.met:
            context.report("repair", f"{path.name} misses {judge.describe()}; not repaired (--no-repair)",
                           level="note")
    finally:
        worker.close()
    outcome.validation.update(judge.eval_fields(after))
    if judge.max_drop is not None:
        outcome.budget_met, outcome.budget = after.met, judge.describe()
    return outcome


class _Worker:
    """The explain ranking and the ladder for one artifact."""

    def __init__(self, context, recipe, path: Path, fp32: Optional[Path], judge: Judge, scratch: Optional[Path]):
        self.context, self.recipe, self.path, self.fp32, self.judge = context, recipe, path, fp32, judge
        self._scratch = tempfile.TemporaryDirectory(prefix="edgeml-repair-")
        self.scratch = Path(self._scratch.name)
        self.onnx_scratch = scratch or self.scratch
        self._explainer: Optional[Explainer] = None
        self._count = 0

    def close(self) -> None:
        if self._explainer is not None:
            self._explainer.close()
        self._scratch.cleanup()

    # --- explain ---

    def explainer(self) -> Explainer:
        if self._explainer is None:
            context = self.context
            names = LayerNames(context.source.keras_model)
            graph = self.recipe.graph(names)
            self._explainer = Explainer(graph, self.recipe.build, _outputs, context.validation_set, context.reference,
                                        self.recipe.suffix, noise=context.noise(sorted(names.compute)))
        return self._explainer

    def ranking(self) -> List[dict]:
        explainer = self.explainer()
        if explainer.ranking is None:
            self.context.report("explain", f"measuring each layer of {self.path.name} kept in float")

            def progress(done: int, total: int) -> None:
                self.context.report("explain", f"explaining {self.path.name}", done=done, total=total)

            explainer.rank(progress)
        return explainer.ranking

    def explain_fields(self) -> dict:
        explainer = self.explainer()
        ranking = self.ranking()
        gate, synthetic = self.judge.gate, self.context.synthetic

        def good_enough(trial: Trial) -> bool:
            return bool(check_outputs(explainer.reference, trial.outputs, explainer.data, gate, synthetic=synthetic,
                                      runner="explain")["passed"])

        if good_enough(explainer.base):
            suggestion, note = None, "none needed: the int8 artifact passes its gate"
        else:
            suggestion = explainer.suggest(good_enough)
            note = (f"the fewest top layers whose float version passes the gate: {', '.join(suggestion['layers'])}"
                    if suggestion else "no 3 layers in float pass the gate")
        fields = explainer.report(suggestion)
        fields["explain"]["suggestion"] = note
        top = ", ".join(f"{row['name']} {row['share']:.0%}" for row in ranking[:3] if row["error_reduction"] > 0)
        self.context.report("explain", f"{self.path.name}: share of the int8 output error each layer causes (kept in "
                                       f"float): {top or 'no single layer stands out'}", level="note")
        return fields

    # --- the ladder ---

    def climb(self, before: Assessment):
        context, judge = self.context, self.judge
        context.report("repair", f"{self.path.name} misses {judge.describe()} ({judge.metric} {before.score:.1%}, "
                                 f"{before.drop:.1f} pt below the original); trying repairs", level="warning")
        tried: List[dict] = [self._rung_zero()]
        chosen = slower = None
        for rung, what, make in self._rungs():
            if make is None:
                tried.append({"rung": rung, "what": what, "result": "skipped"})
                continue
            self._count += 1
            candidate = self.scratch / f"candidate{self._count}{self.recipe.suffix}"
            context.report("repair", f"{self.path.name}: ({rung}) {RUNG_NAMES[rung]}: {what}")
            try:
                details = make(candidate) or {}
            except ConversionError as error:
                tried.append({"rung": rung, "what": what, "result": f"failed: {error}"})
                continue
            assessment = judge.assess(candidate)
            record = {"rung": rung, "what": what, **assessment.figures(), "met": assessment.met}
            tried.append(record)
            if not assessment.met:
                continue
            speed = self._speed(candidate, same_ops=bool(details.pop("same_ops", False)))
            acceptable = speed.pop("acceptable")
            record.update(speed)
            attempt = (rung, what, candidate, assessment, details, record)
            if not acceptable:
                slower = slower or attempt
                continue
            chosen = attempt
            break
        if chosen is None and slower is not None:
            chosen = slower
            context.report("repair", f"{self.path.name}: the only repair within the budget ({slower[1]}) runs slower "
                                     f"than the fp32 file ({slower[5]['p50_ms']:.3g} vs {slower[5]['fp32_p50_ms']:.3g}"
                                     " ms p50): shipped, and said so in the manifest", level="warning")
        if chosen is None:
            context.report("repair", f"{self.path.name}: no repair met {judge.describe()}; the plain int8 file is kept",
                           level="warning")
            return before, {"budget": judge.describe(), "rung": None, "result": "no rung met the budget",
                            "before": before.figures(), "tried": tried}, []
        rung, what, candidate, assessment, details, record = chosen
        shutil.copyfile(candidate, self.path)
        mixed = details.get("mixed", [])
        context.report("repair", f"{self.path.name}: repaired by ({rung}) {RUNG_NAMES[rung]} ({what}): "
                                 f"{judge.metric} {assessment.score:.1%}, {assessment.drop:.1f} pt from the original",
                       level="note")
        repair = {"budget": judge.describe(), "rung": rung, "applied": f"{RUNG_NAMES[rung]}: {what}",
                  "before": before.figures(), "after": assessment.figures(),
                  "kept_higher_precision": [item["layer"] for item in mixed],
                  **{key: value for key, value in details.items() if key != "mixed"},
                  **{key: record[key] for key in ("p50_ms", "fp32_p50_ms", "plain_int8_p50_ms", "slower_than_fp32",
                                                  "note") if key in record},
                  "tried": tried}
        return assessment, repair, mixed

    def _rung_zero(self) -> dict:
        target = getattr(self.recipe, "weights", None)
        if target is None:
            return {"rung": "0", "what": RUNG_NAMES["0"],
                    "result": "nothing to choose: TFLite int8 kernels accumulate in int32 on every CPU"}
        bits = 7 if target.reduce_range else 8
        return {"rung": "0", "what": RUNG_NAMES["0"], "result": f"{bits}-bit weights, applied to the plain int8 "
                                                                f"already: {target.reason}"}

    def _rungs(self) -> Iterator[tuple]:
        yield from self._calibration_rungs()
        yield self._equalization_rung()
        yield from self._int16_rungs()
        yield from self._float_rungs()

    def _calibration_rungs(self):
        context = self.context
        samples = context.options.calibration_samples
        more = context.plan.more_calibration(samples) if context.plan is not None else None
        count = context.calibration_set.samples
        if self.recipe.fmt == "tflite":
            if more is None:
                yield "a", f"more calibration samples (none beyond the {count} used)", None
            else:
                recipe = TfliteRecipe(context, calibration=more, label=f"TFLite int8 ({more.samples} samples)")
                yield "a", f"min/max ranges from {more.samples} calibration samples", _plain(recipe)
            return
        data = more or context.calibration_set
        if more is not None:
            yield "a", f"min/max ranges from {more.samples} calibration samples", self._onnx(data, "minmax", "more")
        for method in ("percentile", "entropy"):
            what = {"percentile": "99.999th-percentile ranges", "entropy": "entropy (minimum KL) ranges"}[method]
            yield "a", f"{what} from {data.samples} calibration samples", self._onnx(data, method, method)

    def _onnx(self, data: Dataset, method: str, tag: str):
        def make(destination: Path):
            OnnxRecipe(self.context, self.fp32, self.onnx_scratch, calibration=data, method=method, tag=tag,
                       weights=self.recipe.weights).build((), destination)
            return {"same_ops": True}
        return make

    def _equalization_rung(self):
        equalized = self.context.equalized()
        if equalized is None or isinstance(equalized, str):
            return "b", f"Dense/Conv pairs joined by ReLU ({equalized or 'none found'})", None
        source, pairs = equalized
        what = f"{len(pairs)} pair(s): {', '.join(pair.describe() for pair in pairs[:4])}" + (
            ", ..." if len(pairs) > 4 else "")
        details = {"equalized": [pair.describe() for pair in pairs]}
        if self.recipe.fmt == "tflite":
            recipe = TfliteRecipe(self.context, source=source, label="TFLite int8 (equalized)")
            return "b", what, _plain(recipe, details)

        def make(destination: Path):
            fp32 = self.context.equalized_onnx()
            OnnxRecipe(self.context, fp32, self.onnx_scratch, tag="equalized", weights=self.recipe.weights).build(
                (), destination)
            return {**details, "same_ops": True}
        return "b", what, make

    def _int16_rungs(self):
        context = self.context
        if self.recipe.fmt == "tflite":
            if "tflm" in context.options.formats:
                yield "c", "int16x8 (TFLM sources need the full-int8 model)", None
                return
            yield "c", "int16 activations and int8 weights for the whole model (TFLite int16x8: its converter " \
                       "has no per-layer int16)", self._tflite_int16x8
            return
        names = self._helpful()
        if not names:
            yield "c", "16-bit activations (no layer's float version lowers the error)", None
            return
        explainer = self.explainer()
        for count in range(1, min(MAX_INT16_LAYERS, len(names)) + 1):
            chosen = names[:count]
            tensors = [tensor for name in chosen for node in explainer.candidate(name).nodes
                       for tensor in _node_outputs(explainer, node)]

            def make(destination: Path, tensors=tensors, chosen=chosen):
                self.recipe.build((), destination, int16_tensors=tensors)
                return {"mixed": [{"layer": name, "precision": "int16 activations (output), int8 weights"}
                                  for name in chosen]}
            yield "c", f"16-bit activations on the output of {', '.join(chosen)}", make

    def _tflite_int16x8(self, destination: Path) -> dict:
        from edgeml_converters.tflite_export import export_tflite

        context = self.context
        export_tflite(context.source.saved_model_dir, context.source.signature_key, Mode.INT16X8, destination,
                      calibration=context.calibration_set, float_io=context.options.float_io,
                      progress=context.progress)
        return {"mixed": [{"layer": "*", "precision": "int16 activations, int8 weights (TFLite int16x8, whole "
                                                      "model)"}]}

    def _float_rungs(self):
        if self.recipe.fmt == "tflite" and "tflm" in self.context.options.formats:
            yield "d", "layers in float (TFLM sources need the full-int8 model)", None
            return
        names = self._helpful()
        if not names:
            yield "d", "layers in float (no layer's float version lowers the error)", None
            return
        explainer = self.explainer()
        for count in range(1, min(MAX_FLOAT_LAYERS, len(names)) + 1):
            nodes, layers = explainer.float_set(names[:count])

            def make(destination: Path, nodes=nodes, layers=layers):
                self.recipe.build(nodes, destination)
                return {"mixed": [{"layer": layer, "precision": "float32"} for layer in layers]}
            yield "d", f"{', '.join(names[:count])} in float (with the ops reading them: {', '.join(layers)})", make

    def _helpful(self) -> List[str]:
        self.ranking()
        return self.explainer().helpful()

    def _speed(self, candidate: Path, same_ops: bool) -> dict:
        """p50 of the candidate, of the fp32 file of the same format and of the plain int8 file (one thread, the
        three alternating, best of three rounds), and whether the candidate may ship: not slower than fp32; or, where
        int8 itself does not beat fp32 here (a small model: quantizing the inputs costs more than int8 saves), not
        slower than the plain int8; a candidate with the plain int8's very operators (rungs a, b: other ranges or
        weights) runs at its speed by construction, so timer noise cannot fail it."""
        if self.fp32 is None:
            return {"acceptable": True}
        import edgeml_runtime

        files = {"fp32": self.fp32, "plain": self.path, "candidate": candidate}
        timings: Dict[str, List[float]] = {key: [] for key in files}
        for _ in range(3):
            for key, file in files.items():
                result = edgeml_runtime.benchmark(file, runs=100, warmup=5, min_seconds=0.2, warmup_seconds=0.05,
                                                  threads=1)
                timings[key].append(result.latency_ms["p50"])
        fp32, plain, mine = (min(timings[key]) for key in ("fp32", "plain", "candidate"))

        def slower(than: float) -> bool:
            return mine > than * SLOWER_TOLERANCE + SLOWER_SLACK_MS

        plain_slower = plain > fp32 * SLOWER_TOLERANCE + SLOWER_SLACK_MS
        speed = {"p50_ms": round(mine, 4), "fp32_p50_ms": round(fp32, 4), "plain_int8_p50_ms": round(plain, 4),
                 "slower_than_fp32": slower(fp32)}
        speed["acceptable"] = bool(same_ops or not slower(fp32) or (plain_slower and not slower(plain)))
        if speed["slower_than_fp32"] and speed["acceptable"]:
            speed["note"] = ("the plain int8 has the same operators (its speed)" if same_ops else
                             "plain int8 is slower than fp32 here too; the repair is not slower than it")
        return speed


def _outputs(path: Path, data: Dataset) -> Dict[str, np.ndarray]:
    return run_artifact(path, data)[0]


def _plain(recipe, details: Optional[dict] = None) -> Callable[[Path], dict]:
    """Make the all-int8 variant of `recipe` (the plain int8's operators, other ranges or weights)."""
    def make(destination: Path) -> dict:
        recipe.build((), destination)
        return {**(details or {}), "same_ops": True}
    return make


def _node_outputs(explainer: Explainer, node_id: str) -> List[str]:
    node = next((n for n in explainer.graph.nodes if n.id == node_id), None)
    return list(node.outputs) if node is not None else []


# --- shared per conversion: the judge, the equalized copy, the cheap pre-ranking -----------------------------------


class Shared:
    """Per-conversion caches the artifacts share (held by the pipeline's context)."""

    def __init__(self, context):
        self.context = context
        self._judge: Optional[Judge] = None
        self._equalized = None
        self._equalized_onnx: Optional[Path] = None
        self._noise: Optional[Dict[str, float]] = None
        self._scratch = tempfile.TemporaryDirectory(prefix="edgeml-precision-")

    def judge(self) -> Judge:
        if self._judge is None:
            self._judge = Judge(self.context)
        return self._judge

    def noise(self, names: Sequence[str]) -> Dict[str, float]:
        if self._noise is None:
            self._noise = quantization_noise(self.context.source.keras_model, list(names), self.context.validation_set)
        return self._noise

    def equalized(self):
        """(source of the equalized copy, pairs), or a reason (str) why there is none."""
        if self._equalized is None:
            self._equalized = self._make_equalized()
        return self._equalized

    def _make_equalized(self):
        from edgeml_converters.equalize import equalize
        from edgeml_converters.loading import keras_source

        context = self.context
        model = context.source.keras_model
        if model is None:
            return "the source is not a Keras model"
        started = time.perf_counter()
        try:
            copy, pairs = equalize(model)
        except Exception as error:  # an unusual layer graph: this rung is skipped, not the conversion
            return f"not applicable: {str(error).splitlines()[0][:200] if str(error) else type(error).__name__}"
        if not pairs:
            return "none found"
        data = context.validation_set.take(np.arange(min(64, context.validation_set.samples)))
        original = run_batches(context.source.predict, None, data)
        feeds = [data.arrays[info.name] for info in context.source.inputs]
        changed = copy(feeds[0] if len(feeds) == 1 else feeds, training=False)
        changed = changed if isinstance(changed, (list, tuple, dict)) else [changed]
        values = list(changed.values()) if isinstance(changed, dict) else list(changed)
        for expected, actual in zip(original.values(), values):
            spread = float(np.ptp(expected)) or 1.0
            if float(np.max(np.abs(np.asarray(actual) - expected))) / spread > EQUALIZED_TOLERANCE:
                return "the equalized copy's outputs differ from the original's (not applied)"
        source = keras_source(copy, context.source, "cross-layer equalized copy")
        context.report("repair", f"equalized {len(pairs)} Dense/Conv pair(s) of a copy of the model in "
                                 f"{time.perf_counter() - started:.1f} s")
        return source, pairs

    def equalized_onnx(self) -> Path:
        from edgeml_converters import onnx_export

        if self._equalized_onnx is None:
            source, _ = self._equalized
            path = Path(self._scratch.name) / "equalized.fp32.onnx"
            onnx_export.export_onnx(source.saved_model_dir, source.signature_key, path,
                                    opset=self.context.options.opset)
            self._equalized_onnx = path
        return self._equalized_onnx

    def close(self) -> None:
        if self._equalized is not None and not isinstance(self._equalized, str):
            self._equalized[0].cleanup()
        self._scratch.cleanup()
