"""Rich consoles: results on stdout, progress and logs on stderr (so --json output stays clean)."""

from __future__ import annotations

import sys
from functools import lru_cache

# Piped or captured output has no terminal width; rich would squeeze tables into 80 columns.
PIPE_WIDTH = 160


@lru_cache(maxsize=None)  # noqa: UP033 - functools.cache is Python 3.9+, fine, but keep one spelling
def stdout_console():
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)


@lru_cache(maxsize=None)  # noqa: UP033
def stderr_console():
    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() else PIPE_WIDTH)
