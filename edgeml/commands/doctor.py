"""`edgeml doctor`: what is installed, which backends really work here, and what each command needs."""

from __future__ import annotations

import json
import shutil
import sys

import click

from edgeml.console import stdout_console

# (what, why it matters) for the command-line tools edgeml drives.
TOOLS = {"ssh": "edgeml deploy", "ssh-keygen": "edgeml bundle --sign, edgeml deploy --trust",
         "tar": "bundles on the device"}


def check_backends() -> list:
    """Import each runtime backend for real (not just look it up): a broken install shows here."""
    from edgeml_runtime.backends import backend_problem
    from edgeml_runtime.formats import BACKENDS

    checks = []
    for name in BACKENDS:
        reason = backend_problem(name, import_it=True)
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


def check_fleet() -> list:
    """Whether `edgeml deploy --inventory` can start ansible-playbook (edgeml's own or one on PATH)."""
    from edgeml.device.fleet import FleetError, ansible_playbook_command

    try:
        detail, ok = " ".join(ansible_playbook_command()), True
    except FleetError as error:
        detail, ok = str(error), False
    return [{"check": "fleet (ansible-playbook)", "ok": ok, "detail": detail}]


def check_tool_envs() -> list:
    """The tool environments `edgeml setup` builds (only some conversions need them)."""
    try:
        from edgeml_converters import onnx2tf_env
    except ImportError:  # no converters: check_converters says so
        return []
    state = onnx2tf_env.status()
    if state["ready"]:
        versions = state["versions"] or {}
        detail = f"{state['path']} (onnx2tf {versions.get('onnx2tf')}, tensorflow {versions.get('tensorflow')})"
    else:
        detail = "not set up (only ONNX → TFLite needs it): edgeml setup onnx2tf"
    return [{"check": "tool env onnx2tf", "ok": state["ready"], "detail": detail}]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json: bool):
    """Check what is installed and what works on this machine. Exit 1 when no runtime backend works."""
    from edgeml_runtime.machine import machine_info

    from edgeml.versions import installed_versions

    checks = check_backends() + check_converters() + check_tool_envs() + check_fleet() + check_tools()
    report = {"versions": installed_versions(), "machine": machine_info(), "python": sys.version.split()[0],
              "checks": checks}
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_report(report)
    if not any(check["ok"] for check in checks if check["check"].startswith("backend")):
        from edgeml_runtime import CheckFailed
        from edgeml_runtime.formats import FORMATS, install_hint

        hints = " or ".join(install_hint(fmt) for fmt in FORMATS)
        raise CheckFailed(f"no runtime backend works: {hints}")


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
