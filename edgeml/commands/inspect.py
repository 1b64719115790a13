"""`edgeml inspect MODEL`: inputs, outputs, dtypes, quantization, ops, parameters and size; with `--device`,
whether it fits that board."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeml.console import stdout_console


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--device", "device", metavar="PROFILE",
              help="Check the fit on a device profile (see `edgeml devices`) or a profile .toml: RAM and flash for "
                   "a microcontroller, RAM for a Linux board.")
@click.option("--profiles", "profile_dirs", multiple=True, type=click.Path(file_okay=False),
              help="Extra folder of device profiles (*.toml); may be repeated.")
@click.option("--check", is_flag=True, help="With --device: exit 1 when the model does not fit.")
@click.option("--unsafe", is_flag=True, help="Load Keras models with Lambda layers (runs code from the file).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def inspect(model: Path, device, profile_dirs, check: bool, unsafe: bool, as_json: bool):
    """Show what MODEL (.tflite, .onnx, .ort, .keras, Keras 2 .h5 or a SavedModel directory) takes and gives,
    and what it is made of; for .onnx also its opsets, symbolic dimensions and external data files."""
    from edgeml.inspection import device_fit, inspect_model

    if check and not device:
        raise click.UsageError("--check needs --device PROFILE")
    profile = None
    if device:
        from edgeml.device.profiles import get_profile

        profile = get_profile(device, profile_dirs)  # an unknown device fails before the model is read
    report = inspect_model(model, unsafe=unsafe)
    if profile is not None:
        report["fit"] = device_fit(model, report, profile)
        report["fits"] = report["fit"]["fits"]
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print_report(model, report)
    if check and not report["fits"]:
        from edgeml_runtime import CheckFailed

        raise CheckFailed(f"{model.name} does not fit {profile.name}")


def quantization_text(report: dict) -> str:
    """'int8', 'int8 (float32 inputs/outputs)' for a model quantized inside with float I/O, or 'none'."""
    quantization, io = report.get("quantization"), report.get("io_dtype")
    if not quantization:
        return "none"
    if io and io.startswith("float") and quantization not in ("fp16", "dynamic"):
        return f"{quantization} ({io} inputs/outputs)"
    return quantization


def _print_report(model: Path, report: dict) -> None:
    from edgeml.console import format_size

    console = stdout_console()
    parameters = f"{report['parameters']:,}" if report["parameters"] is not None else "unknown"
    console.print(f"[bold]{model.name}[/]  {report['format']}  {format_size(report['bytes'])}  "
                  f"quantization {quantization_text(report)}  parameters {parameters}", highlight=False)
    if report.get("loader"):
        console.print(f"loaded with {report['loader']}", markup=False, highlight=False, style="dim")
    for note in report.get("notes") or []:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(tensor_table(report))
    if report["ops"]:
        ops = ", ".join(f"{name}×{count}" for name, count in sorted(report["ops"].items()))
        console.print(f"ops: {ops}")
    if "fit" in report:
        print_fit(report["fit"])


def print_fit(fit: dict) -> None:
    """The verdict, then one line per budget (needed vs available, margin) and how each figure was obtained."""
    from edgeml.console import format_size

    console = stdout_console()
    verdict = "[green]fits[/]" if fit["fits"] else "[red]does not fit[/]"
    console.print(f"\n[bold]{fit['device']}[/] ({'microcontroller' if fit['kind'] == 'mcu' else 'Linux board'}): "
                  f"{verdict}")
    for name in ("ram", "flash"):
        budget = fit.get(name)
        if not budget:
            continue
        parts = {key: value for key, value in budget.items() if key.endswith("_bytes") and key not in
                 ("needed_bytes", "available_bytes", "margin_bytes")}
        detail = ", ".join(f"{key[:-6].replace('_', ' ')} {format_size(value)}" for key, value in parts.items())
        state = "ok" if budget["fits"] else "[red]too big[/]"
        console.print(f"  {name.upper() if name == 'ram' else name}: {format_size(budget['needed_bytes'])} of "
                      f"{format_size(budget['available_bytes'])}, margin {format_size(abs(budget['margin_bytes']))} "
                      f"{'left' if budget['margin_bytes'] >= 0 else 'short'} "
                      f"({budget['margin_fraction']:.0%}) {state}")
        console.print(f"    {detail}", markup=False, highlight=False)
        console.print(f"    {budget['basis']}", markup=False, highlight=False, style="dim")
    for problem in fit.get("problems", []):
        console.print(f"  problem: {problem}", markup=False, highlight=False, style="red")
    for note in fit.get("notes", []):
        console.print(f"  note: {note}", markup=False, highlight=False)


def tensor_table(report: dict):
    from rich.table import Table

    table = Table()
    for column in ("", "name", "shape", "dtype", "quantization (scale, zero point)"):
        table.add_column(column)
    symbolic = report.get("dynamic_dims") or {}  # ONNX: the names of symbolic dimensions ("N", "batch")
    for kind in ("inputs", "outputs"):
        for spec in report[kind]:
            quantization = spec.get("quantization")
            q = f"{quantization['scale']:.6g}, {quantization['zero_point']}" if quantization else "-"
            names = symbolic.get(spec["name"], {})
            shape = "(" + ", ".join(names.get(str(axis), "None") if d is None else str(d)
                                    for axis, d in enumerate(spec["shape"])) + ")"
            table.add_row(kind[:-1], spec["name"], shape, spec["dtype"], q)
    return table
