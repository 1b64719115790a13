"""`edgeml explore`: look at the data before training (statistics, missing values, class balance, plots)."""

from __future__ import annotations

import json

import click

from edgeml.console import stdout_console
from edgeml.trainer.data import BUILTIN_DATASETS


@click.command()
@click.argument("data", required=False, type=click.Path(dir_okay=True))
@click.option("--dataset", type=click.Choice(BUILTIN_DATASETS), help="Explore a built-in dataset instead of DATA.")
@click.option("--target", help="Target column (default: a column named target/label/class/y).")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False), default="explore-output",
              show_default=True, help="Where summary.json and the PNG plots go.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def explore(data, dataset, target, outdir, no_plots, as_json):
    """Summarise DATA (CSV/Parquet, .npz, image folder) or --dataset: columns, gaps, class balance, plots."""
    from edgeml.trainer.explore import explore as run_explore

    summary = run_explore(data, dataset=dataset, target=target, outdir=outdir, make_plots=not no_plots)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    _print_summary(stdout_console(), summary)  # a result: stdout (errors go to stderr)


def _print_summary(console, summary) -> None:
    from rich.table import Table

    if "columns" in summary:
        table = Table(title=f"{summary['source']}: {summary['rows']} rows, "
                            f"{summary['duplicate_rows']} duplicate rows, {summary['missing_values']} missing values")
        for column in ("column", "dtype", "missing", "unique", "mean", "std", "min", "max", "top"):
            table.add_column(column, justify="left" if column in ("column", "dtype", "top") else "right")
        for name, info in summary["columns"].items():
            table.add_row(name, info["dtype"], str(info["missing"]), str(info["unique"]),
                          *(_number(info.get(key)) for key in ("mean", "std", "min", "max")), info.get("top", ""))
        console.print(table)
    else:
        console.print(f"{summary['source']}: {summary['images']} images, widths {summary['width']}, "
                      f"heights {summary['height']}, modes {summary['modes']}")
        if summary["unreadable"]:
            console.print(f"[red]{len(summary['unreadable'])} unreadable images[/], e.g. {summary['unreadable'][0]}")
    if summary.get("class_balance"):
        balance = ", ".join(f"{name}: {count}" for name, count in summary["class_balance"].items())
        console.print(f"class balance ({summary.get('target') or 'folders'}): {balance}; "
                      f"majority share {summary['majority_share']:.1%}")
    for note in summary.get("notes") or []:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(f"wrote {len(summary['files'])} files: " + ", ".join(summary["files"]))


def _number(value) -> str:
    return "" if value is None else f"{value:.4g}"
