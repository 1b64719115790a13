"""`edgeml doctor`: what is installed, which backends really work here, and what each command needs."""

from __future__ import annotations

import importlib
import json
import shutil
import sys

import click

from edgeml.console import stdout_console

# (what, why it matters) for the command-line tools edgeml drives.
TOOLS = {"ssh": "edgeml deploy", "scp": "edgeml deploy", "tar": "bundles on the device"}


def check_backends() -> list:
    """Import each runtime backend for real (not just look it up): a broken install shows here."""
    from edgeml_runtime.backends import litert

    checks = []
    for name, module in (("litert", "ai_edge_litert.interpreter"), ("tflite_runtime", "tflite_runtime.interpreter"),
                         ("onnxruntime", "onnxruntime")):
        reason = litert.unavailable_reason(name) if name != "onnxruntime" else None
        if reason is None:
            try:
                importlib.import_module(module)
            except Exception as error:  # noqa: BLE001 - any import failure is the finding itself
                reason = f"import failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        checks.append({"check": f"backend {name}", "ok": reason is None, "detail": reason or "works"})
    return checks


def check_tools() -> list:
    return [
        {"check": f"tool {tool}", "ok": shutil.which(tool) is not None,
         "detail": shutil.which(tool) or f"not found (needed for {needed_for})"}
        for tool, needed_for in TOOLS.items()
    ]


def check_converters() -> list:
    import importlib.util

    found = all(importlib.util.find_spec(name) for name in ("tensorflow", "tf2onnx", "onnx"))
    detail = "tensorflow, tf2onnx and onnx installed" if found else "pip install 'edgeml[converters]' for convert/train"
    return [{"check": "converters", "ok": found, "detail": detail}]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool):
    """Check what is installed and what works on this machine. Exit 1 when no runtime backend works."""
    from edgeml_runtime.machine import machine_info

    from edgeml.versions import installed_versions

    checks = check_backends() + check_converters() + check_tools()
    report = {"versions": installed_versions(), "machine": machine_info(), "python": sys.version.split()[0],
              "checks": checks}
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_report(report)
    if not any(check["ok"] for check in checks if check["check"].startswith("backend")):
        from edgeml_runtime import CheckFailed

        raise CheckFailed("no runtime backend works: pip install 'edgeml-runtime[litert]' or 'edgeml-runtime[onnx]'")


def print_report(report: dict) -> None:
    from rich.table import Table

    machine = report["machine"]
    console = stdout_console()
    console.print(f"[bold]machine[/] {machine['arch']}, {machine['cpu']}, {machine['cores']} cores, "
                  f"{machine['os']}, Python {report['python']}")
    versions = ", ".join(f"{name} {version}" for name, version in report["versions"].items())
    console.print(f"[bold]versions[/] {versions}")
    table = Table()
    table.add_column("check")
    table.add_column("")
    table.add_column("detail")
    for check in report["checks"]:
        table.add_row(check["check"], "[green]ok[/]" if check["ok"] else "[yellow]missing[/]", check["detail"])
    console.print(table)
