"""`edgeml devices emulate`: build (or reuse) an emulated device and run commands on it."""

from __future__ import annotations

import json

import click


@click.command(
    "emulate",
    context_settings={"ignore_unknown_options": True},
)
@click.argument("target")  # a device profile with an [emulation] table; the emulation package checks it
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--status", "show_status", is_flag=True, help="Show what is cached; build nothing.")
@click.option("--rebuild", is_flag=True, help="Delete the cached device and build it again.")
@click.option("--json", "as_json", is_flag=True, help="With --status or a build: machine-readable output.")
@click.pass_context
def emulate(ctx, target, command, show_status, rebuild, as_json):
    """Build an emulated TARGET (a device profile with an [emulation] table, e.g. rpi4, rpi5: Debian arm64
    under qemu-user) and run COMMAND on it.

    \b
    edgeml devices emulate rpi4                      build or reuse ~/.cache/edgeml/emulated
    edgeml devices emulate rpi4 -- python -m edgeml_runtime bench model.tflite
    edgeml devices emulate rpi4 -- uname -m

    `python`/`python3` is the device's Python 3.11 with numpy, LiteRT, ONNX Runtime and this
    checkout's edgeml_runtime. Emulated runs are marked (EDGEML_EMULATED): their latency is not the
    device's.
    """
    from edgeml.console import ProgressDisplay
    from edgeml.emulation import build, status

    if show_status:
        _print_status(status(target), as_json)
        return
    with ProgressDisplay(f"building the emulated {target}") as display:
        device = build(target, rebuild=rebuild, progress=display)
    if not command:
        if as_json:
            click.echo(json.dumps(status(target), indent=2))
        else:
            click.echo(f"{target} is ready (emulated by {device.emulated}); its python3: {device.python}")
            click.echo(f"run a command: edgeml devices emulate {target} -- python3 -c 'import platform; "
                       "print(platform.machine())'")
        return
    result = device.run(list(command))  # click has removed the `--` separator
    ctx.exit(result.returncode)


def _print_status(report: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        if key == "wheels":
            value = ", ".join(value) or None
        click.echo(f"{key:12} {'-' if value is None else value}")
