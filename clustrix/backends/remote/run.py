"""A remote run: a submission staged on the login node, and the fate of its elements."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..._states import JobState
from ...oncluster.layout import RunLayout
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
