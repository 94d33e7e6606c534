"""`Job[R]`: the awaitable handle of one task running on a cluster."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ._exceptions import UsageError
from ._job_control import JobControl as JobControl
from ._states import JobState

if TYPE_CHECKING:
    from ._client import Client

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
        """Block until the cancellation is confirmed (synchronous code only).

        Args:
            timeout: Seconds to wait at most; None waits as long as it takes.

        Raises:
            UsageError: Called on the event loop (``await`` it there).
            TimeoutError: `timeout` seconds passed first.
        """
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
    job on the cluster. Jobs are made by clustrix (`Client.submit`, calling a
    `@cluster` function, `Client.attach`), never directly.

    Attributes:
        key: The clustrix key of this task (``clustrix jobs``, `Client.attach`).
        name: The function's qualified name.
        index: The task's position in its sweep; None for a single call.
        reason: Why the task is pending or how it ended, when the scheduler says.
        exit_code: The task's exit code, once known.
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

    @property
    def attempts(self) -> int:
        """How many times the task was submitted: 1, plus one per retry (``retries=``)."""
        return self._control.attempt

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

        Args:
            timeout: Seconds to wait at most; None waits as long as it takes.

        Raises:
            TimeoutError: `timeout` seconds passed first (the job keeps running).
            UsageError: Called on the event loop that runs the job, or that loop stopped.
            Exception: What the function raised (same type, remote traceback attached),
                or a `JobError` subclass if the task ended without a result.
        """
        _refuse_blocking(self._loop)
        waiter = asyncio.run_coroutine_threadsafe(self._wait(), self._loop)
        try:
            return waiter.result(timeout)
        except TimeoutError:
            waiter.cancel()
            raise TimeoutError(f"{self!r} did not finish within {timeout} s") from None

    def cancel(self) -> Cancellation:
        """Start cancelling now; the returned awaitable completes once confirmed.

        Raises:
            UsageError: The job's `Client` is closed.
        """
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
        attempt = f" attempt={self.attempts}" if self.attempts > 1 else ""
        return (
            f"<Job {self.name}{index} {self._state.value}{where}{reason}{attempt} key={self.key}>"
        )
