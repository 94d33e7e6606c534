"""The backend interface every kind of cluster implements."""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .._config import ClusterConfig
from .._exceptions import AttachError
from .._job import JobControl
from .._options import Resources
from .._payload import Payload

if TYPE_CHECKING:
    from .._record_writer import RecordWriter

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class Submission:
    """One call or one sweep: a payload, its resources and a `JobControl` per task.

    `key` is clustrix's unique id of the submission; backends carry it to the cluster
    (job name, comment or label) so a submission can be found again. Task *i* is
    `jobs[i]` and its arguments are `payload.arguments[i]`.
    """

    key: str
    name: str
    payload: Payload
    resources: Resources
    config: ClusterConfig
    jobs: Sequence[JobControl[Any]]
    chunksize: int | None = None  # tasks per array element; None = backend's choice


class Backend(abc.ABC):
    """Turns submissions into running tasks and reports back through their jobs'
    `JobControl`s (the backend's side of each `Job`).

    `submit` returns once the cluster accepted the submission (raising a clustrix
    error and leaving nothing behind if it did not); from then on the backend's own
    background tasks (owned by it, ended by `aclose`) drive every job to its end.
    """

    #: True if leaving a `Client` leaves running tasks running (remote clusters);
    #: False if they cannot outlive the client (local processes).
    detaches: bool = True

    #: The client's record writer (set by the client): `flush()` it before removing
    #: anything a later process might still need to collect.
    records: RecordWriter | None = None

    @abc.abstractmethod
    async def submit(self, submission: Submission) -> None:
        """Stage and submit; return when accepted."""

    @abc.abstractmethod
    async def cancel(self, jobs: Sequence[JobControl[Any]]) -> None:
        """Cancel these unfinished jobs; return once the cluster confirmed it."""

    @abc.abstractmethod
    async def read_output(self, job: JobControl[Any], stream: Stream) -> str:
        """The task's stdout or stderr so far."""

    async def attach(self, submission: Submission, run_dir: str, age: float, gone: str) -> None:
        """Follow `submission`, submitted `age` seconds ago by an earlier process (its
        run directory `run_dir` as recorded), without submitting anything; end its
        tasks with `gone` if nothing is left of it."""
        raise AttachError(
            f"{type(self).__name__} cannot reattach: its tasks ended with the process "
            "that started them"
        )

    @abc.abstractmethod
    async def aclose(self, *, cancel_running: bool) -> None:
        """Stop background work; cancel running tasks if asked (or if they cannot
        outlive the backend)."""


async def wait_all(jobs: Sequence[JobControl[Any]]) -> None:
    """Wait until every one of `jobs` has an outcome (raising none of them)."""
    await asyncio.gather(*(job.wait() for job in jobs))
