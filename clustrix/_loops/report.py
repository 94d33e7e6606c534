"""`explain()`'s report: every `for` loop of a function, parallel or not, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["cores", "sweep"]


@dataclass(frozen=True)
class LoopReport:
    """One `for` loop: where it is, whether it runs in parallel, how and why."""

    lineno: int
    parallel: bool
    mode: Mode | None
    reason: str

    def __str__(self) -> str:
        verdict = f"parallel ({self.mode})" if self.parallel else "sequential"
        return f"line {self.lineno}: {verdict} - {self.reason}"


@dataclass(frozen=True)
class ExplainReport:
    """What `clustrix.explain(f)` found: ``.loops`` in source order, and a summary.

    `note` says why nothing could be analysed (no source, say), or is empty.
    """

    function: str
    loops: tuple[LoopReport, ...]
    note: str = ""

    @property
    def parallel_loops(self) -> tuple[LoopReport, ...]:
        """The loops that run in parallel."""
        return tuple(loop for loop in self.loops if loop.parallel)

    def __str__(self) -> str:
        head = f"{self.function}: "
        if self.note:
            head += self.note
        elif not self.loops:
            head += "no for loops"
        else:
            head += f"{len(self.parallel_loops)} of {len(self.loops)} for loop(s) run in parallel"
        return "\n".join([head, *(f"  {loop}" for loop in self.loops)])

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:  # IPython/Jupyter
        text = getattr(printer, "text", None)
        if callable(text):
            text(str(self))
