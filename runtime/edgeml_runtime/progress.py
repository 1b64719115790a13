"""Progress as small events: libraries (converters, trainer, deploy, emulation, bench) emit them, and only
the `edgeml` command line (`edgeml/console.py`) decides how they look. Nothing here prints.

    def work(progress: ProgressCallback = None):
        report(progress, "calibrate", "calibrating", done=3, total=300)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["LEVELS", "ProgressCallback", "ProgressEvent", "report"]

# info: a step's status line; note: a fact worth keeping on screen; warning: something the user should act on.
LEVELS = ("info", "note", "warning")


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a long task. `done`/`total` count items within the stage when it has a size."""

    stage: str
    message: str
    done: Optional[int] = None
    total: Optional[int] = None
    level: str = "info"

    def to_dict(self) -> dict:
        return {"stage": self.stage, "message": self.message, "done": self.done, "total": self.total,
                "level": self.level}

    @classmethod
    def from_dict(cls, data: dict) -> ProgressEvent:
        return cls(str(data["stage"]), str(data["message"]), data.get("done"), data.get("total"),
                   str(data.get("level") or "info"))


ProgressCallback = Optional[Callable[[ProgressEvent], None]]


def report(progress: ProgressCallback, stage: str, message: str, *, done: Optional[int] = None,
           total: Optional[int] = None, level: str = "info") -> None:
    """Send one event to `progress` when there is a listener."""
    if progress is not None:
        progress(ProgressEvent(stage, message, done, total, level))
