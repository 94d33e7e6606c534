"""A rich progress bar for sweeps, redrawn when a task ends (no refresh thread)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from ._job import Job


class SweepProgress:
    """Shows `done/total` and failures for a sweep on the terminal (stderr)."""

    def __init__(self, name: str, jobs: Sequence[Job[Any]], console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            auto_refresh=False,
            transient=False,
        )
        self._task = self._progress.add_task(name, total=len(jobs), failed=0)
        self._remaining = len(jobs)
        self._failed = 0
        self._progress.start()
        self._progress.refresh()
        for job in jobs:
            job._control.add_done_callback(self._on_done)
        if not jobs:
            self._progress.stop()

    def _on_done(self, job: Job[Any]) -> None:
        self._remaining -= 1
        if job._control.failed():
            self._failed += 1
        self._progress.update(self._task, advance=1, failed=self._failed)
        self._progress.refresh()
        if self._remaining == 0:
            self._progress.stop()

    def stop(self) -> None:
        """Remove the bar from the terminal (when the sweep is abandoned)."""
        self._progress.stop()
