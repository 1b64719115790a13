"""How the CLI reports errors: one line, the right exit code, a traceback only with --debug.

Exit codes (DESIGN.md, plus one for bugs): 0 ok, 1 a check failed, 2 usage / bad input, 70 an internal error
(EX_SOFTWARE from sysexits.h: a bug in edgeml, not a problem with what the user gave it). Scripts and tests
can tell a crash (70) from a refusal (2).
"""

from __future__ import annotations

import sys
import traceback

import click

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL_ERROR = 70  # EX_SOFTWARE
INTERRUPTED = 130

REPORT_REQUEST = ("this is a bug in edgeml, please report it with the output of `edgeml --version` and of the "
                  "same command run as `edgeml --debug ...`")


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
        sys.exit(INTERRUPTED)
    click.secho(f"internal error: {type(error).__name__}: {error}", fg="red", err=True)
    click.secho(REPORT_REQUEST, fg="red", err=True)
    sys.exit(EXIT_INTERNAL_ERROR)
