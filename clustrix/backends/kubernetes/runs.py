"""The kubernetes backend's bookkeeping of a submission, and resolving tasks from a log.

A `Run` is one submission on the cluster: its Job and its elements (one pod each,
``chunksize`` consecutive tasks). `resolve` turns an ended pod's parsed log into each
task's outcome; it does no I/O.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ..._exceptions import EnvironmentMismatchError, ResultIntegrityError, SerializationError
from ..._job import JobControl
from ..._payload import decode_result
from ..._settle import Ending, settle
from ..._states import JobState
from ..base import Submission
from .manifests import default_image
from .status import PodLog, PodView, TaskLog, describe, stuck_hint

OUTPUT_KEEP = 1 << 20  # characters of a finished task's output kept for stdout()


@dataclass
class Element:
    """One pod's worth of tasks: index `index` of the Job (0 for a single call)."""

    index: int
    tasks: list[int]
    job_id: str
    pod: str | None = None
    settled: bool = False
    timer: asyncio.TimerHandle | None = None
    view: PodView | None = None

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


@dataclass
class Run:
    """A submission on the cluster: its Job, its elements and their bookkeeping."""

    submission: Submission
    name: str
    elements: list[Element]
    chunksize: int
    uid: str | None = None
    created_at: float = math.inf
    gone: bool = False  # the Job was deleted (by us or from outside) or given up on
    finishing: bool = False
    adopted: bool = False  # submitted by an earlier process: watched by its key alone
    work: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    def plan(cls, submission: Submission, name: str, chunksize: int, indexed: bool) -> Run:
        count = len(submission.jobs)
        elements = [
            Element(
                e,
                list(range(e * chunksize, min((e + 1) * chunksize, count))),
                f"{name}/{e}" if indexed else name,
            )
            for e in range(math.ceil(count / chunksize))
        ]
        return cls(submission, name, elements, chunksize)

    def element_of(self, position: int) -> Element:
        return self.elements[position // self.chunksize]

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep `task` (work on this run, e.g. a log read) until it ends."""
        self.work.add(task)
        task.add_done_callback(self.work.discard)

    async def drain(self) -> None:
        """Wait for the other work on this run in flight now (log reads)."""
        pending = [task for task in self.work if task is not asyncio.current_task()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def unfinished(self) -> list[JobControl[Any]]:
        return [job for job in self.submission.jobs if not job.done()]

    def disarm(self) -> None:
        for element in self.elements:
            element.disarm()

    def queued(self) -> list[JobControl[Any]]:
        """Mark the submitted jobs QUEUED (unless the watch was faster); return them all."""
        jobs = self.submission.jobs
        for element in self.elements:
            for position in element.tasks:
                if jobs[position].state is JobState.PENDING:
                    jobs[position].set_state(JobState.QUEUED, job_id=element.job_id)
        return [jobs[position] for element in self.elements for position in element.tasks]

    def idle_pods(self) -> list[str]:
        """Pods still running whose tasks all ended (cancelled): settled now, to stop."""
        jobs, idle = self.submission.jobs, []
        for element in self.elements:
            if element.pod and not element.settled and all(jobs[p].done() for p in element.tasks):
                element.settled = True
                idle.append(element.pod)
        return idle


def resolve(
    run: Run,
    element: Element,
    parsed: PodLog,
    view: PodView,
    *,
    fallback: tuple[JobState, str] | None,
    outputs: MutableMapping[JobControl[Any], str],
) -> None:
    """Resolve each task of an ended pod from its log; `fallback` for tasks without one.

    A task's framed result wins over everything (it finished before the pod ended);
    without one, the task ends as `fallback` says (its pod was deleted) or as the pod
    ended (OOMKilled, DeadlineExceeded, exit code), with its output as the stderr tail.
    """
    pod = element.pod or run.name
    for position in element.tasks:
        job = run.submission.jobs[position]
        part = parsed.tasks.get(position)
        output = part.output if part else ""
        outputs[job] = output[-OUTPUT_KEEP:]
        if job.done():
            continue
        job.set_state(job.state, job_id=element.job_id, reason=view.reason)
        if parsed.mismatch:
            here, local = parsed.mismatch
            job.set_exception(
                EnvironmentMismatchError(
                    f"the image of pod {pod} runs Python {here}, this client {local}: pickles "
                    f"cannot travel between them; set k8s_image to an image with Python "
                    f"{local} (e.g. {default_image()})"
                )
            )
        elif part is not None and part.result is not None:
            try:
                job.set_result(decode_result(part.result, job_id=element.job_id))
            except BaseException as error:
                job.set_exception(error)
        elif part is not None and part.too_large is not None:
            size, limit = part.too_large
            job.set_exception(
                SerializationError(
                    f"the result of {job.name} (job {element.job_id}) is {size:,} bytes; "
                    f"results travel through the pod log and may be at most {limit:,}. Write "
                    "large results to a volume (extra={'volumes': [...], 'volumeMounts': "
                    "[...]}) and return their paths"
                )
            )
        elif part is not None and part.corrupt:
            job.set_exception(
                ResultIntegrityError(
                    f"the result of job {element.job_id} in the log of pod {pod} is "
                    "truncated or corrupted; it was never unpickled"
                )
            )
        else:
            ending = _ending(run, element, part, view, fallback, output, job.cancel_requested)
            job.end(settle(ending))


def _ending(
    run: Run,
    element: Element,
    part: TaskLog | None,
    view: PodView,
    fallback: tuple[JobState, str] | None,
    output: str,
    cancel: bool,
) -> Ending:
    """What the pod's log and status say of a task that left no result."""
    pod, tail = element.pod or run.name, output[-4000:]
    if part is not None and part.timeout is not None:  # the entry point stopped it
        return Ending(
            JobState.TIMEOUT,
            view.exit_code,
            timed_out=True,
            time_limit=part.timeout,
            cancel_requested=cancel,
            stderr_tail=tail,
        )
    if fallback is not None:  # its pod was deleted
        return Ending(fallback[0], reason=fallback[1], cancel_requested=cancel, stderr_tail=tail)
    if view.state is JobState.COMPLETED:
        why = (
            f"the pod {pod} succeeded but its log holds no result for this task (was the pod "
            "deleted, or its log rotated?)"
        )
        return Ending(JobState.LOST, reason=why, cancel_requested=cancel)
    never = "" if part is not None else "it never started: "
    return Ending(
        view.state,
        view.exit_code,
        time_limit=run.submission.resources.time,
        cancel_requested=cancel,
        stderr_tail=tail,
        detail=never + describe(view, pod),
    )


def fail_unsettled(run: Run, state: JobState, reason: str, message: str) -> None:
    """The Job ended (`reason`) but these elements' pods were never seen to end."""
    detail = f": {message}" if message else ""
    for element in run.elements:
        if element.settled:
            continue
        element.settled = True
        for position in element.tasks:
            job = run.submission.jobs[position]
            job.set_state(job.state, job_id=element.job_id, reason=reason)
            job.fail(
                JobState.LOST if state is JobState.COMPLETED else state,
                f"its Kubernetes Job {run.name} ended ({reason}) with no result for this "
                f"task{detail}",
            )


def fail_stuck(run: Run, element: Element, view: PodView, grace: float) -> None:
    """A pod could not start for `grace` seconds (image pull, bad config): fail the run."""
    for job in run.unfinished():
        job.set_state(job.state, reason=view.reason)
        job.fail(
            JobState.FAILED,
            f"the pod {element.pod} could not start for {grace:g} s: {view.reason}: "
            f"{view.message}; {stuck_hint(view.reason)}",
        )


def vanished_because(job_deleted: bool, run: Run, element: Element) -> tuple[JobState, str]:
    """Why a pod vanished before it ended: with its Job (cancelled), or alone (lost)."""
    if job_deleted:
        return JobState.CANCELLED, f"its Kubernetes Job {run.name} was deleted from outside"
    return JobState.LOST, f"the pod {element.pod} was deleted or evicted before it ended"
