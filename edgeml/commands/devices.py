"""`edgeml devices`: list device profiles, show one, or (with the emulation part) build an emulated Pi."""

from __future__ import annotations

import json

import click

PROFILES_OPTION = click.option(
    "--profiles", "profile_dirs", multiple=True, type=click.Path(file_okay=False),
    help="Extra folder of device profiles (*.toml); may be repeated. ~/.config/edgeml/devices is always read.",
)


@click.group(invoke_without_command=True)
@PROFILES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def devices(ctx, profile_dirs, as_json):
    """List device profiles (`edgeml devices` or `edgeml devices list`), show one (`edgeml devices show rpi5`)."""
    ctx.ensure_object(dict)
    ctx.obj["profile_dirs"] = profile_dirs
    ctx.obj["as_json"] = as_json
    if ctx.invoked_subcommand is None:
        list_profiles(profile_dirs, as_json)


@devices.command("list")
@PROFILES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def list_command(ctx, profile_dirs, as_json):
    """List device profiles (the same as `edgeml devices`)."""
    list_profiles([*ctx.obj.get("profile_dirs", ()), *profile_dirs], as_json or ctx.obj.get("as_json", False))


def list_profiles(profile_dirs, as_json: bool) -> None:
    from rich.table import Table

    from edgeml.console import format_size, stdout_console
    from edgeml.device.profiles import load_profiles

    profiles = load_profiles(profile_dirs)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in profiles.values()], indent=2))
        return
    table = Table(title="Device profiles")
    for column in ("name", "arch", "cores", "RAM", "Python", "backends", "description"):
        table.add_column(column, no_wrap=column != "description")
    for profile in (p for p in profiles.values() if not p.is_mcu):
        table.add_row(profile.name, profile.arch, str(profile.cores), format_size(profile.ram_mb * 1024 * 1024),
                      profile.python, ", ".join(profile.backends), profile.description)
    stdout_console().print(table)
    microcontrollers = [p for p in profiles.values() if p.is_mcu]
    if microcontrollers:
        stdout_console().print(mcu_table(microcontrollers))
    click.echo("details: edgeml devices show NAME; your own profiles: ~/.config/edgeml/devices/*.toml")


def mcu_table(profiles):
    """Microcontroller profiles (TFLM targets): core, clock, RAM and flash instead of Python and backends."""
    from rich.table import Table

    from edgeml.console import format_size

    table = Table(title="Microcontrollers (TensorFlow Lite Micro: edgeml convert --to tflm)")
    for column in ("name", "chip", "core", "clock", "RAM", "flash", "FPU", "DSP", "kernels"):
        table.add_column(column, no_wrap=column not in ("chip", "core"))
    for profile in profiles:
        mcu = profile.mcu
        table.add_row(profile.name, profile.cpu, mcu.core, f"{mcu.clock_mhz} MHz", format_size(mcu.ram_bytes),
                      format_size(mcu.flash_bytes), mcu.fpu, "yes" if mcu.dsp else "no", mcu.kernels or "-")
    return table


@devices.command()
@click.argument("name")
@PROFILES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def show(ctx, name, profile_dirs, as_json):
    """Show the device profile NAME (or a .toml file)."""
    from edgeml.device.profiles import get_profile

    profile = get_profile(name, [*ctx.obj.get("profile_dirs", ()), *profile_dirs])
    if as_json:
        click.echo(json.dumps({**profile.to_dict(), "source": profile.source}, indent=2))
        return
    for key, value in profile.to_dict().items():
        if key == "notes":
            continue
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        click.echo(f"{key:12} {value}")
    click.echo(f"{'source':12} {profile.source}")
    if profile.notes:
        click.echo("\n" + profile.notes)


try:  # the emulated Pi is another part of edgeml; `devices` works without it
    from edgeml.commands.emulate import emulate
except ImportError:  # pragma: no cover - only when the emulation part is absent
    emulate = None
if emulate is not None:
    devices.add_command(emulate)
