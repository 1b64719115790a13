"""The one error type of the emulated device build: it names the step that failed."""

from __future__ import annotations

from edgeml_runtime.errors import EdgeMLError

__all__ = ["EmulationError"]


class EmulationError(EdgeMLError):
    """Building or running the emulated device failed; the message names the step and the fix."""

    def __init__(self, step: str, problem: str):
        self.step = step
        self.problem = problem
        super().__init__(f"emulated device: step '{step}' failed: {problem}")
