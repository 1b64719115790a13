"""`edgeml convert`: Keras/TF or ONNX model -> TFLite and ONNX artifacts (and TFLM sources), checked against the
original."""

from __future__ import annotations

import json
from pathlib import Path

import click
from edgeml_runtime import EdgeMLError
from edgeml_runtime.formats import RECOMMENDED_KEY, SOURCE_TARGETS, TARGETS

from edgeml.console import ProgressDisplay, format_ms, format_size, stdout_console

try:  # the modes' vocabulary belongs to the converters (`pip install 'edgeml[converters]'`)
    from edgeml_converters.modes import Mode
except ModuleNotFoundError as missing:
    if (missing.name or "").partition(".")[0] != "edgeml_converters":
        raise
    Mode = None

INSTALL_HINT = "pip install 'edgeml[converters]'"
RECOMMENDED_MARK = "★"
NUMBER_COLUMNS = ("size", "vs fp32", "arena", "top-1", "cosine", "max diff")
MODE_NAMES = ", ".join(mode.value for mode in Mode) if Mode else f"(needs {INSTALL_HINT})"


def _split(values) -> list:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.command("convert")
@click.argument("source", type=click.Path(path_type=str))
@click.option("-o", "--output", "output_dir", type=click.Path(path_type=str),
              help="Output directory (default: <stem>-edgeml/ next to the model).")
@click.option("--to", "formats", default="tflite,onnx", show_default=True,
              help=f"Formats, comma-separated: {', '.join([*TARGETS, *SOURCE_TARGETS])} (ort: ONNX Runtime Mobile; "
                   "tflm: TensorFlow Lite Micro C++ sources for microcontrollers, needs --int8 and makes the int8 "
                   ".tflite too).")
@click.option("--quantize", "quantize", multiple=True, metavar="MODE",
              help=f"Quantization mode(s), repeatable or comma-separated: {MODE_NAMES}. "
                   "fp32 is always made too, as the baseline.")
@click.option("--int8", "int8", is_flag=True, help="Short for --quantize int8 (full integer, int8 I/O).")
@click.option("--fp16", "fp16", is_flag=True, help="Short for --quantize fp16.")
@click.option("--dynamic", "dynamic", is_flag=True, help="Short for --quantize dynamic (int8 weights only).")
@click.option("--calibration", metavar="PATH|synthetic",
              help="Representative data for int8/int16x8: .npy, .npz (by input name), image folder, .csv, "
                   "or 'synthetic' for random inputs. Default: calibration.npz next to the model.")
@click.option("--calibration-samples", default=300, show_default=True, type=click.IntRange(min=1),
              help="How many calibration samples to use (taken evenly).")
@click.option("--validate-data", metavar="PATH", help="Inputs to validate on (default: held-back calibration "
              "samples, else synthetic).")
@click.option("--float-io", is_flag=True, help="Keep float inputs/outputs in int8/int16x8 TFLite models.")
@click.option("--opset", type=click.IntRange(min=13), help="ONNX opset (default 17).")
@click.option("--allow-flex", is_flag=True, help="Allow TensorFlow (Flex) ops in TFLite; the slim runtime "
              "cannot run such a model.")
@click.option("--unsafe", is_flag=True, help="Load models that carry code: Keras Lambda layers, SavedModels whose "
              "graph touches files, runs Python or reaches the network (runs it on this machine).")
@click.option("--min-cosine", type=click.FloatRange(-1, 1), help="Cosine gate for quantized artifacts.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), help="Top-1 agreement gate for quantized artifacts.")
@click.option("--fp32-tolerance", type=click.FloatRange(min=0), help="fp32 gate: max diff / output range "
              "(default 1e-4).")
@click.option("--input-range", "input_range", multiple=True, metavar="[NAME=]LO,HI",
              help="The range of values the model's input expects, e.g. 0,1 or -1,1 or 0,255 (NAME=LO,HI per input, "
                   "repeatable). Image folders are scaled into it, synthetic data drawn from it. Default: what "
                   "labels.json records, else the model's Rescaling layer, else the calibration data's range.")
@click.option("--explain", is_flag=True, help="Rank each int8 artifact's layers by the output error they cause "
              "(measured with each layer kept in float); the table and a suggested exclusion list go to the "
              "manifest (validation.layers).")
@click.option("--max-drop", "max_drop", type=click.FloatRange(0, 100), metavar="PTS",
              help="Accuracy budget: each int8 artifact must stay within PTS points of the original (accuracy on "
                   "labelled --eval-data, else top-1 agreement). Missed: repair (better calibration, equalization, "
                   "16-bit activations, the fewest layers in float).")
@click.option("--eval-data", "eval_data", metavar="PATH", help="Labelled evaluation data for --max-drop: .npz with "
              "inputs (x, or by input name) and labels y. Default: test.npz next to the model.")
@click.option("--no-repair", "no_repair", is_flag=True, help="Do not repair an int8 artifact that misses its gate "
              "or budget; report it.")
@click.option("--device", "device", metavar="PROFILE", help="The device the artifacts are for (edgeml devices): "
              "target-dependent settings follow its CPU (ONNX int8 keeps 8-bit weights on ARM, 7-bit on x86 "
              "without VNNI). Default: this machine.")
@click.option("--no-recommend", "no_recommend", is_flag=True, help="Skip the speed measurement: by default every "
              "passing artifact is timed on this machine at each thread count (about a second) and the fastest is "
              "named in the manifest as `recommended` (ties go to the smaller file; `edgeml select` measures again "
              "on the device).")
@click.option("--keep-layout", "keep_layout", is_flag=True, help="ONNX sources: the TFLite files take the ONNX "
              "model's layout (NCHW from PyTorch) instead of TFLite's NHWC; the manifest's `layout` says which.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
def convert(source, output_dir, formats, quantize, int8, fp16, dynamic, calibration, calibration_samples,
            validate_data, float_io, opset, allow_flex, unsafe, min_cosine, min_agreement, fp32_tolerance,
            input_range, explain, max_drop, eval_data, no_repair, device, no_recommend, keep_layout, as_json):
    """Convert SOURCE (.keras, .h5, a SavedModel directory or .onnx) to TFLite and ONNX, and check each
    artifact against the original. Exit 1 when an artifact misses its validation gate (files and
    manifest are kept), 2 on bad input. With --to tflm, a model TensorFlow Lite Micro cannot run
    (an operator it lacks) exits 2 naming it, after writing the other artifacts."""
    if Mode is None:
        raise EdgeMLError(f"edgeml convert needs the converters (TensorFlow, tf2onnx): {INSTALL_HINT}")
    from edgeml_converters import ConvertOptions, GatesFailed, IncompleteConversion
    from edgeml_converters import convert as convert_model

    modes = [Mode.FP32, *_split(quantize)]
    modes += [mode for mode, flag in ((Mode.INT8, int8), (Mode.FP16, fp16), (Mode.DYNAMIC, dynamic)) if flag]
    options = ConvertOptions(
        formats=_split([formats]), modes=modes, calibration=calibration, calibration_samples=calibration_samples,
        validate_data=validate_data, float_io=float_io, opset=opset, allow_flex=allow_flex, unsafe=unsafe,
        fp32_tolerance=fp32_tolerance, min_cosine=min_cosine, min_agreement=min_agreement,
        input_range=list(input_range), explain=explain, max_drop=max_drop, eval_data=eval_data, repair=not no_repair,
        target_machine=_target_machine(device), recommend=not no_recommend, keep_layout=keep_layout,
    )
    # On a terminal a live status line; piped or logged, one line per step (stderr: --json stays clean).
    with ProgressDisplay(f"converting {Path(source).name}") as display:
        try:
            manifest = convert_model(source, output_dir, options, progress=display)
            failure = None
        except (GatesFailed, IncompleteConversion) as error:  # what was made is written: show it, then fail
            manifest, failure = error.manifest, error
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
    else:
        stdout_console().print(summary_table(manifest, scores=_outputs_are_scores(source, output_dir, manifest)))
        if RECOMMENDED_KEY in manifest:
            stdout_console().print(recommendation_line(manifest), markup=False, highlight=False, soft_wrap=True)
        for table in explain_tables(manifest):  # --explain: which layers cost each int8 artifact its accuracy
            stdout_console().print(table)
    _write_report(source, output_dir, manifest, quiet=as_json)
    if failure is not None:
        raise failure


def _target_machine(device):
    """A Linux device profile's CPU architecture (None: this host). Microcontrollers take --to tflm sources, whose
    int8 kernels are TFLM's own: no target setting applies."""
    if device is None:
        return None
    from edgeml.device.profiles import get_profile

    profile = get_profile(device)
    return None if profile.kind == "mcu" else profile.arch


def _output_dir(source, output_dir) -> Path:
    from edgeml_converters.output_dir import default_output_dir

    return Path(output_dir).expanduser().resolve() if output_dir else default_output_dir(Path(source).resolve())


def _outputs_are_scores(source, output_dir, manifest: dict) -> bool:
    """Top-1 agreement means something only for class scores (not for autoencoders, regressors...)."""
    from edgeml.report import outputs_are_scores

    return outputs_are_scores(_output_dir(source, output_dir), manifest) is not False


def _write_report(source, output_dir, manifest: dict, *, quiet: bool) -> None:
    """OUT/report.html next to manifest.json (edgeml.report); its path under the table (not with --json)."""
    from edgeml.report import write_convert_report

    path = write_convert_report(_output_dir(source, output_dir), manifest)
    if not quiet:
        stdout_console().print(f"report: {path}", markup=False, highlight=False, soft_wrap=True)


def summary_table(manifest: dict, *, scores: bool = True):
    """One row per artifact: size and size ratio vs the fp32 file of the same format, and validation. TFLM
    sources show the embedded model's size (what takes flash) and, in their own column, the tensor arena.
    `scores=False` (outputs that are not class scores) leaves out the top-1 column: max diff and cosine say it."""
    from rich.table import Table

    fp32_bytes = {
        entry["path"].rsplit(".", 1)[-1]: entry["bytes"]
        for entry in manifest["artifacts"] if entry["quantization"] == Mode.FP32
    }
    arenas = any("arena_bytes" in entry for entry in manifest["artifacts"])
    recommended = _recommended_path(manifest)
    table = Table(title=f"edgeml convert: {manifest['source']['path']}")
    columns = (*((RECOMMENDED_MARK,) if recommended else ()), "file", "format", "mode", "size", "vs fp32",
               *(("arena",) if arenas else ()), *(("top-1",) if scores else ()), "cosine", "max diff", "check")
    for column in columns:
        table.add_column(column, justify="right" if column in NUMBER_COLUMNS else "left")
    for entry in manifest["artifacts"]:
        check = entry["validation"]
        baseline = fp32_bytes.get(entry.get("model", entry["path"]).rsplit(".", 1)[-1])
        size = entry.get("model_bytes", entry["bytes"])  # TFLM: the model in the sources, not the C++ text
        arena = [format_size(entry["arena_bytes"]) if "arena_bytes" in entry else "-"] if arenas else []
        agreement, cosine, diff = check["top1_agreement"], check["cosine"], check["max_abs_diff"]
        if check["passed"]:
            verdict = "[green]ok[/green]"
        elif "error" in check:
            verdict = f"[yellow]not run[/yellow] ({check['error']})"
        else:
            verdict = f"[red]FAILED[/red] (needs {check.get('gate', '')})"
        if check.get("max_quanta_diff") is not None:  # TFLM: how far its integer outputs are from LiteRT's
            quanta = check["max_quanta_diff"]
            verdict += f", {quanta} {'quantum' if quanta == 1 else 'quanta'} vs LiteRT"
        verdict += _precision_notes(entry)
        mode = entry["quantization"] + (" (mixed)" if entry.get("mixed") else "")
        mark = [RECOMMENDED_MARK if entry["path"] == recommended else ""] if recommended else []
        table.add_row(
            *mark, entry["path"], entry["format"], mode, format_size(size),
            f"{size / baseline:.2f}x" if baseline else "-", *arena,
            *([_agreement(agreement, check.get("decisive_top1_agreement"))] if scores else []),
            "-" if cosine is None else f"{cosine:.5f}", "-" if diff is None else f"{diff:.3g}", verdict,
        )
    return table


def recommendation_line(manifest: dict) -> str:
    """What the manifest recommends and why, under the table: 'recommended: vww_96.int8.tflite, 2 threads, p50
    0.42 ms on this machine (...)'; or why there is none."""
    chosen = manifest.get(RECOMMENDED_KEY)
    if not chosen:
        return "recommended: none (no artifact passed validation, or none could be run here to measure it)"
    measured_on = chosen.get("measured_on") or {}
    where = measured_on.get("kind") or "this machine"
    if measured_on.get("hostname"):
        where += f" ({measured_on['hostname']})"
    threads = chosen.get("threads")
    return (f"{RECOMMENDED_MARK} recommended: {chosen['path']}, {threads} thread{'' if threads == 1 else 's'}, "
            f"p50 {format_ms(chosen['p50_ms'])} measured on {where}; the fastest passing artifact, ties go to the "
            "smaller file. `edgeml select` measures again on the device")


def _recommended_path(manifest: dict):
    chosen = manifest.get(RECOMMENDED_KEY)
    return chosen.get("path") if isinstance(chosen, dict) else None


def _precision_notes(entry: dict) -> str:
    """', accuracy 98.1% (-0.3 pt)', ', repaired: (b) cross-layer equalization', ', kept in float: dense_1'."""
    notes = ""
    evaluation = entry["validation"].get("eval")
    if evaluation:
        name = "accuracy" if evaluation["metric"] == "accuracy" else evaluation["metric"]
        notes += f", {name} {evaluation['artifact']:.1%} ({-evaluation['drop_points']:+.1f} pt)"
    repair = entry.get("repair")
    if repair:
        notes += f", repaired: ({repair['rung']}) {repair['applied']}" if repair.get("rung") else ", repair failed"
        if repair.get("slower_than_fp32"):
            notes += " [yellow](slower than fp32)[/yellow]"
    mixed = entry.get("mixed")
    if mixed:
        notes += "; not int8: " + ", ".join(f"{item['layer']} {item['precision']}" for item in mixed)
    return notes


def explain_tables(manifest: dict) -> list:
    """For each artifact --explain measured: its layers, worst first (error with the layer kept in float, share of
    the int8 error that goes away), and the suggested layers to keep in float."""
    from rich.table import Table

    tables = []
    for entry in manifest["artifacts"]:
        check = entry["validation"]
        if not check.get("layers") or entry["format"] == "ort":
            continue
        explain = check.get("explain", {})
        suggested = check.get("suggested_float")
        advice = ", ".join(suggested) if suggested else explain.get("suggestion", "none")
        caption = (f"int8 output error {explain.get('int8_error', 0):.3g} (||int8 - original|| / ||original||); "
                   f"suggested to keep in float: {advice}")
        if explain.get("preselected"):
            caption += f"; measured: {explain['preselected']}"
        table = Table(title=f"--explain: {entry['path']}", caption=caption)
        for column in ("layer", "op", "error in float", "share", "kept in float with it"):
            table.add_column(column, justify="right" if column in ("error in float", "share") else "left")
        for row in check["layers"]:
            table.add_row(row["name"], row.get("op", ""), f"{row['error_in_float']:.3g}", f"{row['share']:.1%}",
                          ", ".join(row.get("kept_in_float", [])))
        tables.append(table)
    return tables


def _agreement(raw, decisive) -> str:
    """Raw top-1 agreement, and the decisive one (near-ties left out; what the gate checks) when it differs."""
    if raw is None:
        return "-"
    if decisive is None or abs(decisive - raw) < 5e-4:
        return f"{raw:.1%}"
    return f"{raw:.1%} (decisive {decisive:.1%})"
