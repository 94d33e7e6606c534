"""The batch backend's record of a run, and how it combines the scheduler's word with
the runner's own files.

The job script records the runner's exit status (``elements/E.exit``) and its pid
(``elements/E.pid``) on the cluster's filesystem. Those files are exact where the
scheduler is not: squeue forgets exit codes after MinJobAge, sacct reports them modulo
128, Slurm's Torque wrappers never report one; and an element the scheduler dropped
from its queue without a record (cancelled outside clustrix while it waited) is told
apart from one that ran by the absence of both files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..._states import JobState
from ...oncluster.protocol import ElementReport
from ...schedulers import BatchResources, Scheduler
from .runs import Fate, Run

DROPPED = "cancelled outside clustrix before it started"


@dataclass(frozen=True)
class Part:
    """One array submission of a run: elements ``offset .. offset+count-1``."""

    offset: int
    count: int
    master: str
    resources: BatchResources

    @property
    def elements(self) -> range:
        return range(self.offset, self.offset + self.count)

    def element_id(self, scheduler: Scheduler, element: int) -> str:
        return scheduler.element_job_id(self.master, element - self.offset, self.resources)


@dataclass
class BatchRun:
    """What the batch backend keeps about one run: its array submissions and, for
    elements no one can address, what the jobs-by-name listing said about the run
    as a whole (``ended``: no live job left; ``dropped``: one was deleted while it
    waited)."""

    parts: list[Part] = field(default_factory=list)
    ended: bool = False
    dropped: bool = False


@dataclass(frozen=True)
class Unstarted(Fate):
    """An element gone from the queue without a record: CANCELLED if the runner's
    files confirm it never started, else `otherwise` (None: keep asking)."""

    otherwise: Fate | None = None


def merge_fates(fate: Fate | None, found: Fate | None, report: ElementReport) -> Fate | None:
    """The scheduler's `fate`, with the exit status the job script recorded (`found`,
    from the agent's `report` of the element's files)."""
    if isinstance(fate, Unstarted):
        if report.get("pid") or report.get("exit") is not None:
            return found or fate.otherwise  # it did start: its files tell
        return Fate(fate.state, fate.job_id, fate.reason)
    if fate is None or not fate.state.final or found is None or found.exit_code is None:
        return fate or found
    state = fate.state
    if state in (JobState.COMPLETED, JobState.FAILED):
        state = JobState.COMPLETED if found.exit_code == 0 else JobState.FAILED
    return Fate(state, fate.job_id, fate.reason, found.exit_code)


def fate_from_files(
    run: Run, state: BatchRun, element_id: str, report: ElementReport
) -> Fate | None:
    """An element no one can address (Slurm's Torque wrappers), no exit file: running
    (pid file), waiting, deleted before it started, or ended without a word."""
    if not state.ended:
        return Fate(JobState.RUNNING, element_id) if report.get("pid") else None
    if state.dropped and not report.get("pid"):
        return Fate(JobState.CANCELLED, element_id, DROPPED)  # qdel'ed while queued
    limit = run.submission.resources.time
    started, now = report.get("started"), report.get("now")
    if limit and started and now and now - started >= limit * run.chunksize - 1:
        return Fate(JobState.TIMEOUT, element_id, "killed at its walltime")
    return Fate(JobState.FAILED, element_id, "the job ended without recording an exit status")
