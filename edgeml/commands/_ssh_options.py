"""The ssh options every command that reaches devices over SSH takes (deploy, select), as ssh spells them."""

from __future__ import annotations

import click


def ssh_options(command):
    """-i/--identity, -F/--ssh-config and -o/--ssh-option (repeatable), passed on to ssh as they are."""
    options = (
        click.option("-i", "--identity", type=click.Path(exists=True, dir_okay=False),
                     help="SSH private key (ssh -i)."),
        click.option("-F", "--ssh-config", type=click.Path(exists=True, dir_okay=False),
                     help="SSH config file (ssh -F)."),
        click.option("-o", "--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE",
                     help="Extra ssh option (ssh -o), may be repeated."),
    )
    for option in reversed(options):  # decorators apply bottom-up: keep -i, -F, -o in --help's order
        command = option(command)
    return command
