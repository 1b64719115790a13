"""Everything the command line shows: results on stdout, progress and logs on stderr (so --json output
stays clean), and the one way sizes and latencies are written.

Libraries never print: they emit `edgeml_runtime.progress.ProgressEvent`s and `ProgressDisplay` renders
them (a live status line on a terminal, one line per finished step when piped or logged).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Optional

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


def format_size(count: float) -> str:
    """Bytes in binary units, everywhere the same: '512 B', '99.5 KiB', '46.8 MiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} B"  # unreachable: the loop returns at GiB


def format_ms(milliseconds: Optional[float]) -> str:
    """A latency in milliseconds with three decimals ('0.016 ms'); '-' when not measured."""
    return "-" if milliseconds is None else f"{milliseconds:.3f} ms"


class ProgressDisplay:
    """Render progress events on stderr.

    On a terminal: a live status line (`title` until the first event) and notes/warnings printed above it.
    Otherwise (a pipe, a log file, CI): one line per finished step, so a long step is never silent and a
    counter does not print a line per item.
    """

    def __init__(self, title: str = "working", *, console=None, live: Optional[bool] = None):
        self.console = console or stderr_console()
        self.live = self.console.is_terminal if live is None else live
        self.title = title
        self._status = None
        self._last_line = None

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._status = self.console.status(self.title)
            self._status.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._status is not None:
            self._status.__exit__(*exc_info)
            self._status = None

    def __call__(self, event) -> None:
        if event.level == "warning":
            self._print(f"[yellow]warning:[/] {event.message}")
            return
        if event.level == "note":
            self._print(event.message, markup=False)
            return
        line = event.message if event.total is None else f"{event.message} [{event.done}/{event.total}]"
        if self._status is not None:
            self._status.update(line)
        elif event.total is None or event.done == event.total:
            self._print(line, markup=False, dim=True)

    def _print(self, text: str, *, markup: bool = True, dim: bool = False) -> None:
        if text == self._last_line:
            return
        self._last_line = text
        # soft_wrap: a long line (a deploy error) stays one line in a log instead of breaking at PIPE_WIDTH
        self.console.print(text, markup=markup, highlight=False, style="dim" if dim else None, soft_wrap=True)
