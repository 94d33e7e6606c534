"""`JobControl[R]`: the backend's side of a `Job` (how backends drive a job's state)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._exceptions import JobCancelledError, JobError, UsageError
from ._states import ERROR_FOR_STATE, JobState

if TYPE_CHECKING:
    from ._job import Job
    from ._record_writer import RecordWriter
    from ._retry import TaskRetry
    from ._settle import Verdict
    from .backends.base import Backend

R = TypeVar("R")


class JobControl(Generic[R]):
    """The backend's side of a `Job`: what a backend reads and how it drives the job.

    Backends receive these (`Submission.jobs`), never the user's `Job`, so the `Job`
    API stays the documented one. Every method runs on the job's loop.

    One control serves one attempt: when a task is retried (``retries=``), its control
    is retired (to its backend it is done; later reports about it are ignored) and a
    successor with the next `attempt` drives the same `Job` in a new submission.
    """

    def __init__(self, job: Job[R]) -> None:
        self.job = job
        self.backend: Backend | None = None  # set once a backend takes the job
        self.cancel_requested = False  # `cancel()` was called (not confirmed yet)
        self.attempt = 1  # which submission of the task this control follows (from 1)
        self.history: tuple[str, ...] = ()  # how the earlier attempts ended
        self.retry: TaskRetry | None = None  # set when the call allows retries
        self._retired = False  # a later attempt took over
        self._retired_event: asyncio.Event | None = None
        self.recorder: RecordWriter | None = None  # where state changes are recorded

    # -- what the backend reads ---------------------------------------------------------
    @property
    def index(self) -> int | None:
        """The task's position in its sweep (None for a single call)."""
        return self.job.index

    @property
    def name(self) -> str:
        """The function's name."""
        return self.job.name

    @property
    def key(self) -> str:
        """The job's own key (a batched call keeps its own, unlike its submission's)."""
        return self.job.key

    @property
    def state(self) -> JobState:
        """The latest recorded state."""
        return self.job._state

    @property
    def job_id(self) -> str | None:
        """The native id recorded so far."""
        return self.job._job_id

    def done(self) -> bool:
        """True once the job has an outcome, or a later attempt took over."""
        return self._retired or self.job._future.done()

    def failed(self) -> bool:
        """True if the job ended with an error."""
        future = self.job._future
        return future.done() and future.exception() is not None

    async def wait(self) -> None:
        """Wait until `done()` (whatever the outcome), never raising it."""
        if self._retired:
            return
        if self._retired_event is None:
            self._retired_event = asyncio.Event()
        retired: asyncio.Future[Any] = asyncio.ensure_future(self._retired_event.wait())
        either: list[asyncio.Future[Any]] = [self.job._future, retired]
        try:  # neither raises nor cancels the job
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            retired.cancel()

    def add_done_callback(self, callback: Callable[[Job[R]], None]) -> None:
        """Call `callback(job)` on the job's loop when it ends (now if it has)."""
        job = self.job
        if job._future.done():
            job._loop.call_soon(callback, job)
        else:
            job._callbacks.append(callback)

    # -- how the backend drives it -------------------------------------------------------
    def set_state(
        self, state: JobState, *, job_id: str | None = None, reason: str | None = None
    ) -> None:
        """Record a state reported by the backend (ignored once the job is done)."""
        job = self.job
        if self.done():
            return
        recorder = self.recorder
        if recorder is not None and (
            (state, reason) != (job._state, job.reason)
            or (job_id is not None and job_id != job._job_id)
        ):
            recorder.changed(job.key, state, job_id, reason, self.attempt)
        if job_id is not None:
            job._job_id = job_id
        job.reason = reason
        job._state = state

    def set_result(self, value: R) -> None:
        """Resolve the job with its value."""
        job = self.job
        if not self.done():
            job._state = JobState.COMPLETED
            job._future.set_result(value)
            if self.recorder is not None:
                self.recorder.ended(job.key, JobState.COMPLETED, attempt=self.attempt)

    def set_exception(self, error: BaseException, state: JobState = JobState.FAILED) -> None:
        """Resolve the job with an error; the note says which task raised it.

        If the call allows retries and this ending is one to retry, the task is
        submitted again instead (see `clustrix._retry`) and the job waits on.
        """
        job = self.job
        if self.done():
            return
        if isinstance(error, JobError):
            state = error.state or state
        if self.retry is not None and self.retry.intercept(self, error, state):
            return
        job._state = state
        if self.recorder is not None:
            self.recorder.ended(job.key, state, error, attempt=self.attempt)
        if job.index is not None:
            error.add_note(f"(raised by task {job.index} of sweep {job.key.split('.')[0]})")
        job._future.set_exception(error)
        job._future.exception()  # retrieved: an unawaited failed job is not an error

    def fail(
        self,
        state: JobState,
        message: str,
        *,
        exit_code: int | None = None,
        stderr_tail: str = "",
        reason: str | None = None,
    ) -> None:
        """End the job in `state` without a result, raising the matching `JobError`
        (`reason`, if given, replaces the job's reason first)."""
        job = self.job
        if self.done():
            return
        if self.cancel_requested and state in (JobState.FAILED, JobState.LOST):
            state = JobState.CANCELLED
        if reason is not None:
            job.reason = reason
        error_type = ERROR_FOR_STATE.get(state, JobError)
        job.exit_code = exit_code
        if self.retry is not None:  # how many attempts were made (dropped if retried)
            message += self.retry.suffix(self, state)
        error = error_type(
            f"{job.name} (job {job._job_id}) ended {state.value}: {message}",
            job_id=job._job_id,
            state=state,
            exit_code=exit_code,
            stderr_tail=stderr_tail,
            reason=job.reason,
        )
        self.set_exception(error, state)

    def end(self, verdict: Verdict) -> None:
        """End the job as `settle` decided (it left no result)."""
        self.fail(
            verdict.state,
            verdict.message,
            exit_code=verdict.exit_code,
            stderr_tail=verdict.stderr_tail,
            reason=verdict.reason,
        )

    def reject(self, error: BaseException) -> None:
        """Resolve with an error of the whole submission (shared by its jobs)."""
        job = self.job
        if not self.done():
            job._state = JobState.FAILED
            job._future.set_exception(error)
            job._future.exception()
            if self.recorder is not None:
                self.recorder.ended(
                    job.key, JobState.FAILED, error, collected=False, attempt=self.attempt
                )

    def detach(self, message: str) -> None:
        """Stop following the job (its client closed); it keeps running remotely."""
        job = self.job
        if not self.done():
            job._future.set_exception(UsageError(message))
            job._future.exception()

    def next_attempt(self, reason: str, history: str) -> JobControl[R]:
        """Retire this control and return its successor, which drives the job's next
        attempt; the job waits again (PENDING, with `reason`, no native id yet)."""
        successor = copy.copy(self)
        successor.attempt = self.attempt + 1
        successor.history = (*self.history, history)
        successor.cancel_requested = False
        successor._retired, successor._retired_event = False, None
        self._retired = True
        if self._retired_event is not None:
            self._retired_event.set()
        job = self.job
        job._control, job._job_id, job.exit_code = successor, None, None
        successor.set_state(JobState.PENDING, reason=reason)
        return successor

    def mark_cancel_requested(self) -> None:
        """Record that clustrix asked for the job to be cancelled."""
        self.cancel_requested = True

    def cancelled_before_start(self) -> None:
        """Resolve a job that was cancelled before it ever ran."""
        job = self.job
        self.set_exception(
            JobCancelledError(
                f"{job.name} was cancelled before it ran",
                job_id=job._job_id,
                state=JobState.CANCELLED,
            ),
            JobState.CANCELLED,
        )


async def cancel_controls(controls: Sequence[JobControl[Any]]) -> None:
    """Cancel these jobs, each through its backend (all of one backend in one call);
    a job no backend has taken yet ends at once."""
    by_backend: dict[int, tuple[Backend, list[JobControl[Any]]]] = {}
    for control in controls:
        control.mark_cancel_requested()
        backend = control.backend
        if backend is None:
            control.cancelled_before_start()
        else:
            by_backend.setdefault(id(backend), (backend, []))[1].append(control)
    await asyncio.gather(*(b.cancel(js) for b, js in by_backend.values()))
