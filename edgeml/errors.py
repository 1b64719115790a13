"""How the CLI reports errors: one line, the right exit code, a traceback only with --debug."""

from __future__ import annotations

import sys
import traceback

import click

# Exit codes from DESIGN.md: 0 ok, 1 a check failed, 2 usage / bad input.
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


def report_and_exit(error: BaseException, *, debug: bool = False) -> None:
    from edgeml_runtime import CheckFailed, EdgeMLError

    if debug:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    if isinstance(error, CheckFailed):
        click.secho(f"check failed: {error}", fg="red", err=True)
        sys.exit(EXIT_CHECK_FAILED)
    if isinstance(error, (EdgeMLError, FileNotFoundError, IsADirectoryError, PermissionError)):
        click.secho(f"error: {error}", fg="red", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if isinstance(error, KeyboardInterrupt):
        click.secho("interrupted", fg="red", err=True)
        sys.exit(130)
    hint = "" if debug else " (run with --debug for the traceback)"
    click.secho(f"internal error: {type(error).__name__}: {error}{hint}", fg="red", err=True)
    sys.exit(EXIT_BAD_INPUT)
