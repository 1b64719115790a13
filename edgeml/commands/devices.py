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
    """List device profiles (`edgeml devices`), show one (`edgeml devices show rpi5`)."""
    ctx.ensure_object(dict)
    ctx.obj["profile_dirs"] = profile_dirs
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from edgeml.console import stdout_console
    from edgeml.device.profiles import load_profiles

    profiles = load_profiles(profile_dirs)
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in profiles.values()], indent=2))
        return
    table = Table(title="Device profiles")
    for column in ("name", "arch", "cores", "RAM", "Python", "backends", "description"):
        table.add_column(column, no_wrap=column != "description")
    for profile in profiles.values():
        table.add_row(profile.name, profile.arch, str(profile.cores), f"{profile.ram_mb} MB", profile.python,
                      ", ".join(profile.backends), profile.description)
    stdout_console().print(table)
    click.echo("details: edgeml devices show NAME; your own profiles: ~/.config/edgeml/devices/*.toml")


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
