"""`edgeml convert`: Keras/TF model -> TFLite and ONNX artifacts, checked against the original."""

from __future__ import annotations

import json

import click

from edgeml.console import stderr_console, stdout_console

MODE_CHOICES = ("fp32", "fp16", "dynamic", "int8", "int16x8")


def _split(values) -> list:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.command("convert")
@click.argument("source", type=click.Path(path_type=str))
@click.option("-o", "--output", "output_dir", type=click.Path(path_type=str),
              help="Output directory (default: <stem>-edgeml/ next to the model).")
@click.option("--to", "formats", default="tflite,onnx", show_default=True,
              help="Formats, comma-separated: tflite, onnx, ort (ONNX Runtime Mobile).")
@click.option("--quantize", "quantize", multiple=True, metavar="MODE",
              help=f"Quantization mode(s), repeatable or comma-separated: {', '.join(MODE_CHOICES)}. "
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
@click.option("--unsafe", is_flag=True, help="Load models with Lambda layers (runs code from the file).")
@click.option("--min-cosine", type=click.FloatRange(-1, 1), help="Cosine gate for quantized artifacts.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), help="Top-1 agreement gate for quantized artifacts.")
@click.option("--fp32-tolerance", type=click.FloatRange(min=0), help="fp32 gate: max diff / output range "
              "(default 1e-4).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON on stdout.")
def convert(source, output_dir, formats, quantize, int8, fp16, dynamic, calibration, calibration_samples,
            validate_data, float_io, opset, allow_flex, unsafe, min_cosine, min_agreement, fp32_tolerance,
            as_json):
    """Convert SOURCE (.keras, .h5 or a SavedModel directory) to TFLite and ONNX, and check each
    artifact against the original. Exit 1 when an artifact misses its validation gate (files and
    manifest are kept), 2 on bad input."""
    from edgeml_converters import GatesFailed
    from edgeml_converters import convert as convert_model

    modes = ["fp32", *_split(quantize)]
    modes += [name for name, flag in (("int8", int8), ("fp16", fp16), ("dynamic", dynamic)) if flag]
    errors = stderr_console()
    with errors.status("converting...") as status:
        def progress(message: str) -> None:
            if message.startswith(("warning", "note", "using", "loaded with")):
                errors.print(message, markup=False, highlight=False)
            status.update(message)

        try:
            manifest = convert_model(
                source, output_dir, formats=_split([formats]), modes=modes, calibration=calibration,
                calibration_samples=calibration_samples, validate_data=validate_data, float_io=float_io,
                opset=opset, allow_flex=allow_flex, unsafe=unsafe, progress=progress,
                fp32_tolerance=fp32_tolerance, min_cosine=min_cosine, min_agreement=min_agreement,
            )
            failure = None
        except GatesFailed as error:
            manifest, failure = error.manifest, error
    if as_json:
        click.echo(json.dumps(manifest, indent=2))
    else:
        stdout_console().print(summary_table(manifest))
    if failure is not None:
        raise failure


def summary_table(manifest: dict):
    """One row per artifact: size and size ratio vs the fp32 file of the same format, and validation."""
    from rich.table import Table

    fp32_bytes = {
        entry["path"].rsplit(".", 1)[-1]: entry["bytes"]
        for entry in manifest["artifacts"] if entry["quantization"] == "fp32"
    }
    table = Table(title=f"edgeml convert: {manifest['source']['path']}")
    for column in ("file", "format", "mode", "size", "vs fp32", "top-1", "cosine", "max diff", "check"):
        table.add_column(column, justify="left" if column in ("file", "format", "mode", "check") else "right")
    for entry in manifest["artifacts"]:
        check = entry["validation"]
        baseline = fp32_bytes.get(entry["path"].rsplit(".", 1)[-1])
        agreement, cosine, diff = check["top1_agreement"], check["cosine"], check["max_abs_diff"]
        if check["passed"]:
            verdict = "[green]ok[/green]"
        elif "error" in check:
            verdict = f"[yellow]not run[/yellow] ({check['error']})"
        else:
            verdict = f"[red]FAILED[/red] (needs {check.get('gate', '')})"
        table.add_row(
            entry["path"], entry["format"], entry["quantization"], _size(entry["bytes"]),
            f"{entry['bytes'] / baseline:.2f}x" if baseline else "-",
            _agreement(agreement, check.get("decisive_top1_agreement")),
            "-" if cosine is None else f"{cosine:.5f}", "-" if diff is None else f"{diff:.3g}", verdict,
        )
    return table


def _agreement(raw, decisive) -> str:
    """Raw top-1 agreement, and the decisive one (near-ties left out; what the gate checks) when it differs."""
    if raw is None:
        return "-"
    if decisive is None or abs(decisive - raw) < 5e-4:
        return f"{raw:.1%}"
    return f"{raw:.1%} (decisive {decisive:.1%})"


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1024 or unit == "MB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)
