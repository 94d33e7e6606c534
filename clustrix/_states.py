"""Job states, and which `JobError` each terminal failure state raises."""

from __future__ import annotations

import enum

from ._exceptions import (
    JobCancelledError,
    JobError,
    JobFailedError,
    JobLostError,
    JobOutOfMemoryError,
    JobTimeoutError,
    NodeFailureError,
)


class JobState(enum.Enum):
    """Where a task is in its life.

    PENDING means known to clustrix but not yet accepted by a scheduler; QUEUED
    means accepted and waiting. The last seven are final, except PREEMPTED when the
    scheduler requeues the job (then it goes back to QUEUED).
    """

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    LOST = "LOST"

    @property
    def final(self) -> bool:
        """True once the task can change no more (PREEMPTED counts as final here;
        a scheduler that requeues reports QUEUED instead)."""
        return self not in _LIVE

    def __str__(self) -> str:
        return self.value


_LIVE = frozenset({JobState.PENDING, JobState.QUEUED, JobState.RUNNING})

#: The `JobError` subclass raised for a task that ended in a state without a result.
ERROR_FOR_STATE: dict[JobState, type[JobError]] = {
    JobState.FAILED: JobFailedError,
    JobState.CANCELLED: JobCancelledError,
    JobState.TIMEOUT: JobTimeoutError,
    JobState.OUT_OF_MEMORY: JobOutOfMemoryError,
    JobState.NODE_FAIL: NodeFailureError,
    JobState.PREEMPTED: JobFailedError,
    JobState.LOST: JobLostError,
    JobState.COMPLETED: JobLostError,  # completed, yet no result file: treat as lost
}
