"""`edgeml inspect MODEL`: inputs, outputs, dtypes, quantization, ops, parameters and size."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgeml.console import stdout_console


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def inspect(model: Path, as_json: bool):
    """Show what MODEL (.tflite, .onnx, .ort, .keras, .h5) takes and gives, and what it is made of."""
    from edgeml.inspection import inspect_model

    report = inspect_model(model)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    console = stdout_console()
    parameters = f"{report['parameters']:,}" if report["parameters"] is not None else "unknown"
    console.print(f"[bold]{model.name}[/]  {report['format']}  {report['bytes']:,} bytes  "
                  f"quantization {report['quantization'] or 'none'}  parameters {parameters}")
    console.print(tensor_table(report))
    if report["ops"]:
        ops = ", ".join(f"{name}×{count}" for name, count in sorted(report["ops"].items()))
        console.print(f"ops: {ops}")


def tensor_table(report: dict):
    from rich.table import Table

    table = Table()
    for column in ("", "name", "shape", "dtype", "quantization (scale, zero point)"):
        table.add_column(column)
    for kind in ("inputs", "outputs"):
        for spec in report[kind]:
            quantization = spec.get("quantization")
            q = f"{quantization['scale']:.6g}, {quantization['zero_point']}" if quantization else "-"
            shape = "(" + ", ".join("None" if d is None else str(d) for d in spec["shape"]) + ")"
            table.add_row(kind[:-1], spec["name"], shape, spec["dtype"], q)
    return table
