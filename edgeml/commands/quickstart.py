"""`edgeml quickstart`: the product end to end on built-in digits, summarised in one table."""

from __future__ import annotations

import json

import click

from edgeml.commands._trainer_options import quiet_tensorflow
from edgeml.commands.convert import RECOMMENDED_MARK
from edgeml.console import ProgressDisplay, format_ms, format_size, stdout_console


@click.command()
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default="demo-output",
              show_default=True, help="Everything goes here: model/, converted/, quickstart.json, report.html.")
@click.option("--epochs", type=click.IntRange(1, 1000), default=60, show_default=True,
              help="Maximum epochs (early stopping usually ends sooner).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def quickstart(outdir, epochs, seed, as_json):
    """Train on digits, convert to TFLite and ONNX (fp32, int8), and compare accuracy, size and speed."""
    quiet_tensorflow()
    from edgeml.trainer.quickstart import QuickstartConfig
    from edgeml.trainer.quickstart import quickstart as run_quickstart

    with ProgressDisplay("quickstart") as display:
        result = run_quickstart(outdir, QuickstartConfig(epochs=epochs, seed=seed), progress=display)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        _print_table(stdout_console(), result)  # the result: stdout; progress went to stderr
    if result.gates_failed:
        from edgeml_runtime import CheckFailed

        raise CheckFailed(result.gates_failed)


def _recommendation_line(recommended) -> str:
    """Which file to ship and why: what `edgeml convert` measured (every passing artifact at each thread count, in
    interleaved rounds), which is not the single-configuration p50 of the table."""
    if not recommended:
        return "no recommended artifact: none passed validation"
    from edgeml_runtime.recommend import TIE_TOLERANCE

    threads = recommended["threads"]
    return (f"{RECOMMENDED_MARK} recommended: {recommended['path']}, {threads} thread{'' if threads == 1 else 's'}, "
            f"p50 {format_ms(recommended['p50_ms'])}: the fastest passing file when edgeml convert timed each one at "
            f"every thread count on {recommended['measured_on']} (within {TIE_TOLERANCE:.0%} of the fastest, the "
            "smaller file wins)")


def _print_table(console, result) -> None:
    from rich.table import Table

    table = Table(title=f"digits test split: {result.keras['accuracy']:.2%} with Keras "
                        f"(train {result.seconds['train']:.0f} s, convert {result.seconds['convert']:.0f} s)")
    # Eight narrow columns fit an 80-column terminal; backends are listed below the table.
    for column in ("format", "mode", "size", "× fp32", "accuracy", "Δ accuracy", "p50"):
        table.add_column(column, justify="left" if column in ("format", "mode") else "right", no_wrap=True)
    keras = result.keras
    table.add_row("keras", "fp32", format_size(keras["bytes"]), "", f"{keras['accuracy']:.2%}", "",
                  format_ms(keras["p50_ms"]))
    for row in result.rows:
        ratio = "" if row.get("size_vs_fp32") is None else f"{row['size_vs_fp32']:.2f}"
        delta = f"{100 * row['delta_accuracy']:+.2f} pt" + ("" if row["validation_passed"] else " [red]gate![/]")
        mode = row["quantization"] + (f" {RECOMMENDED_MARK}" if row.get("recommended") else "")
        table.add_row(row["format"], mode, format_size(row["bytes"]), ratio,
                      f"{row['accuracy']:.2%}", delta, format_ms(row["p50_ms"]))
    console.print(table)
    backends = sorted({f"{row['format']}: {row['backend']}" for row in result.rows})
    console.print(f"p50 = median single-sample latency ({', '.join(backends)}, keras: tensorflow)")
    console.print(_recommendation_line(result.recommended), highlight=False, soft_wrap=True)
    console.print(f"outputs in {result.outdir}/ (model/, converted/, quickstart.json)")
    console.print(f"report: {result.outdir / 'report.html'} (open it in a browser: table, trade-off plot, latency, "
                  "training curves, confusion matrix)", highlight=False, soft_wrap=True)
