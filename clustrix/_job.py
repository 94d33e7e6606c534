"""`Job[R]`: the awaitable handle of one task running on a cluster."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ._exceptions import JobCancelledError, JobError, UsageError
from ._states import ERROR_FOR_STATE, JobState

if TYPE_CHECKING:
    from ._client import Client
    from ._record_writer import RecordWriter
    from ._settle import Verdict
    from .backends.base import Backend

R = TypeVar("R")
T = TypeVar("T")


class Cancellation:
    """The awaitable returned by `cancel()`: done when the cluster confirmed it.

    Await it from async code or call `wait(timeout)` from synchronous code.
    """

    def __init__(self, future: concurrent.futures.Future[None] | asyncio.Future[None]) -> None:
        self._future = future

    def __await__(self) -> Generator[Any, None, None]:
        future = self._future
        if isinstance(future, concurrent.futures.Future):
            future = asyncio.wrap_future(future)
        return (yield from asyncio.shield(future).__await__())

    def wait(self, timeout: float | None = None) -> None:
        """Block until the cancellation is confirmed (synchronous code only)."""
        if isinstance(self._future, asyncio.Future):
            raise UsageError("Cancellation.wait() blocks; use `await` on the event loop")
        self._future.result(timeout)


def _refuse_blocking(loop: asyncio.AbstractEventLoop) -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise UsageError(
            "result() would block the event loop that runs this job; use `await job` "
            "(or `await sweep`) inside async code"
        )
    if loop.is_closed() or not loop.is_running():
        raise UsageError("the event loop this job belongs to has stopped; results are gone")


class Job(Generic[R]):
    """A handle on one task: awaitable, cancellable, with live state.

    ``await job`` returns the function's value or raises what it raised (the same
    exception type, remote traceback attached) or a `JobError` subclass if the
    task ended without a result. Cancelling the task that awaits a job cancels the
    job on the cluster.
    """

    def __init__(
        self,
        client: Client,
        *,
        key: str,
        name: str,
        index: int | None = None,
    ) -> None:
        self._client = client
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[R] = self._loop.create_future()
        self.key = key
        self.name = name
        self.index = index
        self._state = JobState.PENDING
        self._job_id: str | None = None
        self.reason: str | None = None
        self.exit_code: int | None = None
        self._callbacks: list[Callable[[Job[R]], None]] = []
        self._future.add_done_callback(self._run_callbacks)
        self._control: JobControl[R] = JobControl(self)  # the backend's side of this job

    # -- public surface ----------------------------------------------------------------
    @property
    def job_id(self) -> str | None:
        """The scheduler's id for the element running this task; None before submission."""
        return self._job_id

    @property
    def state(self) -> JobState:
        """The latest known `JobState`."""
        return self._state

    def done(self) -> bool:
        """True once the job has a result or an error."""
        return self._future.done()

    def __await__(self) -> Generator[Any, None, R]:
        return self._await().__await__()

    async def _await(self) -> R:
        if asyncio.get_running_loop() is not self._loop:
            return await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._wait(), self._loop)
            )
        try:
            return await asyncio.shield(self._future)
        except asyncio.CancelledError:
            if not self._future.done():
                self.cancel()  # the awaiting task was cancelled: so is the job
            raise

    def _run_callbacks(self, _: asyncio.Future[R]) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    async def _wait(self) -> R:
        """Wait for the outcome without tying the job's fate to the waiter's."""
        return await asyncio.shield(self._future)

    def result(self, timeout: float | None = None) -> R:
        """Block until the job ends and return its value (synchronous code only).

        Raises `TimeoutError` if `timeout` seconds pass first (the job keeps running),
        and `UsageError` if called on the event loop that runs the job.
        """
        _refuse_blocking(self._loop)
        waiter = asyncio.run_coroutine_threadsafe(self._wait(), self._loop)
        try:
            return waiter.result(timeout)
        except TimeoutError:
            waiter.cancel()
            raise TimeoutError(f"{self!r} did not finish within {timeout} s") from None

    def cancel(self) -> Cancellation:
        """Start cancelling now; the returned awaitable completes once confirmed."""
        return self._client.cancel_jobs([self])

    async def stdout(self) -> str:
        """The task's standard output so far (all of it once the job is done)."""
        return await self._read_stream("stdout")

    async def stderr(self) -> str:
        """The task's standard error so far (all of it once the job is done)."""
        return await self._read_stream("stderr")

    async def _read_stream(self, stream: Literal["stdout", "stderr"]) -> str:
        if asyncio.get_running_loop() is not self._loop:
            coro = self._client.read_output(self, stream)
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))
        return await self._client.read_output(self, stream)

    def __repr__(self) -> str:
        where = f" job_id={self._job_id}" if self._job_id else ""
        index = f"[{self.index}]" if self.index is not None else ""
        reason = f" reason={self.reason!r}" if self.reason and not self._state.final else ""
        return f"<Job {self.name}{index} {self._state.value}{where}{reason} key={self.key}>"


class JobControl(Generic[R]):
    """The backend's side of a `Job`: what a backend reads and how it drives the job.

    Backends receive these (`Submission.jobs`), never the user's `Job`, so the `Job`
    API stays the documented one. Every method runs on the job's loop.
    """

    def __init__(self, job: Job[R]) -> None:
        self.job = job
        self.backend: Backend | None = None  # set once a backend takes the job
        self.cancel_requested = False  # `cancel()` was called (not confirmed yet)
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
    def state(self) -> JobState:
        """The latest recorded state."""
        return self.job._state

    @property
    def job_id(self) -> str | None:
        """The native id recorded so far."""
        return self.job._job_id

    def done(self) -> bool:
        """True once the job has an outcome."""
        return self.job._future.done()

    def failed(self) -> bool:
        """True if the job ended with an error."""
        future = self.job._future
        return future.done() and future.exception() is not None

    async def wait(self) -> None:
        """Wait until the job has an outcome (whatever it is), never raising it."""
        await asyncio.wait([self.job._future])  # neither raises nor cancels the job

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
        if job._future.done():
            return
        recorder = self.recorder
        if recorder is not None and (
            (state, reason) != (job._state, job.reason)
            or (job_id is not None and job_id != job._job_id)
        ):
            recorder.changed(job.key, state, job_id, reason)
        if job_id is not None:
            job._job_id = job_id
        job.reason = reason
        job._state = state

    def set_result(self, value: R) -> None:
        """Resolve the job with its value."""
        job = self.job
        if not job._future.done():
            job._state = JobState.COMPLETED
            job._future.set_result(value)
            if self.recorder is not None:
                self.recorder.ended(job.key, JobState.COMPLETED)

    def set_exception(self, error: BaseException, state: JobState = JobState.FAILED) -> None:
        """Resolve the job with an error; the note says which task raised it."""
        job = self.job
        if job._future.done():
            return
        if isinstance(error, JobError):
            state = error.state or state
        job._state = state
        if self.recorder is not None:
            self.recorder.ended(job.key, state, error)
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
        if job._future.done():
            return
        if self.cancel_requested and state in (JobState.FAILED, JobState.LOST):
            state = JobState.CANCELLED
        if reason is not None:
            job.reason = reason
        error_type = ERROR_FOR_STATE.get(state, JobError)
        job.exit_code = exit_code
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
        if not job._future.done():
            job._state = JobState.FAILED
            job._future.set_exception(error)
            job._future.exception()
            if self.recorder is not None:
                self.recorder.ended(job.key, JobState.FAILED, error, collected=False)

    def detach(self, message: str) -> None:
        """Stop following the job (its client closed); it keeps running remotely."""
        job = self.job
        if not job._future.done():
            job._future.set_exception(UsageError(message))
            job._future.exception()

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
