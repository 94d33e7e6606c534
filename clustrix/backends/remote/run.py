"""A remote run: a submission staged on the login node, the fate of its elements, and
how a task without a result ends."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..._job import JobControl
from ..._settle import Ending, settle
from ..._states import JobState
from ...oncluster.layout import RunLayout
from ...oncluster.protocol import RunStatus
from ..base import Submission


@dataclass(frozen=True)
class Fate:
    """What is known about one element: its state, and its native job id."""

    state: JobState
    job_id: str | None = None
    reason: str | None = None
    exit_code: int | None = None


@dataclass(eq=False)
class Run:
    """A submission staged on the login node, and what is still to be collected."""

    submission: Submission
    directory: str
    chunksize: int
    elements: int
    started: float
    live: set[int] = field(default_factory=set)  # elements not settled yet
    uncollected: set[int] = field(default_factory=set)  # tasks without an outcome
    venv: str | None = None  # the venv the tasks run in (replicated or the user's)
    driver: str | None = None  # the ssh backend: host:pid of the run's driver process
    outputs: dict[int, tuple[str, str]] = field(default_factory=dict)

    @property
    def layout(self) -> RunLayout:
        """The names of the run directory's files."""
        return RunLayout(self.directory)

    def tasks_of(self, element: int) -> range:
        count = len(self.submission.jobs)
        return range(element * self.chunksize, min((element + 1) * self.chunksize, count))


def auto_chunksize(tasks: int, slots: int) -> int:
    """About four elements per slot: few interpreter starts, still balanced."""
    return max(1, math.ceil(tasks / max(1, slots * 4)))


def settle_task(run: Run, job: JobControl[Any], fate: Fate, timed_out: bool, tail: str) -> None:
    """End a task that has no result, in the most specific state known."""
    ending = Ending(
        fate.state,
        fate.exit_code,
        fate.reason,
        timed_out=timed_out,
        time_limit=run.submission.resources.time,
        cancel_requested=job.cancel_requested,
        stderr_tail=tail,
    )
    job.end(settle(ending))


def unreported() -> RunStatus:
    """What to assume of a run the agent did not report on: nothing new."""
    return {"now": 0.0, "exists": True, "elements": {}, "results": {}, "timeouts": [], "stderr": {}}
