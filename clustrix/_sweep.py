"""`Sweep[R]`: the handle of a parameter sweep, one `Job` per input."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ._job import Cancellation, Job, _refuse_blocking

if TYPE_CHECKING:
    from ._client import Client
    from ._progress import SweepProgress

R = TypeVar("R")


class Sweep(Generic[R]):
    """Many tasks of one function, submitted together (one array job on a scheduler).

    ``await sweep`` behaves like `asyncio.gather`: the list of results in input
    order, or the first failure as soon as it happens (the other tasks keep running;
    `cancel()` stops them). With ``return_exceptions=True`` failures are returned in
    the list instead. A sweep is also a sequence of its `Job` handles.
    """

    def __init__(
        self,
        client: Client,
        jobs: Sequence[Job[R]],
        *,
        key: str,
        name: str,
        return_exceptions: bool = False,
        progress: SweepProgress | None = None,
    ) -> None:
        self._client = client
        self._jobs = list(jobs)
        self._loop = asyncio.get_running_loop()
        self.key = key
        self.name = name
        self.return_exceptions = return_exceptions
        self._progress = progress

    # -- sequence of jobs ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Job[R]]:
        return iter(self._jobs)

    @overload
    def __getitem__(self, index: int) -> Job[R]: ...
    @overload
    def __getitem__(self, index: slice) -> list[Job[R]]: ...
    def __getitem__(self, index: int | slice) -> Job[R] | list[Job[R]]:
        return self._jobs[index]

    @property
    def jobs(self) -> list[Job[R]]:
        """The tasks' `Job` handles, in input order."""
        return list(self._jobs)

    def done(self) -> bool:
        """True once every task has ended."""
        return all(job.done() for job in self._jobs)

    def counts(self) -> dict[str, int]:
        """How many tasks are in each state, e.g. ``{"RUNNING": 3, "COMPLETED": 97}``."""
        tally: dict[str, int] = {}
        for job in self._jobs:
            tally[job.state.value] = tally.get(job.state.value, 0) + 1
        return tally

    # -- waiting ---------------------------------------------------------------------
    def __await__(self) -> Generator[Any, None, list[R]]:
        return self._await().__await__()

    async def _await(self) -> list[R]:
        if asyncio.get_running_loop() is not self._loop:
            future = asyncio.run_coroutine_threadsafe(self._gather(), self._loop)
            return await asyncio.wrap_future(future)
        try:
            return await self._gather()
        except asyncio.CancelledError:
            if not self.done():
                self.cancel()
            raise

    async def _gather(self) -> list[R]:
        waits = [job._wait() for job in self._jobs]
        results = await asyncio.gather(*waits, return_exceptions=self.return_exceptions)
        return list(results)  # type: ignore[arg-type]  # exceptions only if asked for

    def result(self, timeout: float | None = None) -> list[R]:
        """Block until every task ended and return the results (synchronous code only).

        Args:
            timeout: Seconds to wait at most; None waits as long as it takes.

        Raises:
            TimeoutError: `timeout` seconds passed first (the tasks keep running).
            UsageError: Called on the event loop that runs the sweep, or that loop stopped.
            Exception: The first failure, as `Job.result` raises it (unless the sweep
                was made with ``return_exceptions=True``).
        """
        _refuse_blocking(self._loop)
        waiter = asyncio.run_coroutine_threadsafe(self._gather(), self._loop)
        try:
            return waiter.result(timeout)
        except TimeoutError:
            waiter.cancel()
            raise TimeoutError(f"{self!r} did not finish within {timeout} s") from None

    async def as_completed(self) -> AsyncIterator[Job[R]]:
        """Yield each `Job` as it ends (successfully or not), in completion order."""
        queue: asyncio.Queue[Job[R]] = asyncio.Queue()
        for job in self._jobs:
            job._control.add_done_callback(queue.put_nowait)
        for _ in range(len(self._jobs)):
            yield await queue.get()

    def cancel(self) -> Cancellation:
        """Cancel every unfinished task; the awaitable completes once confirmed.

        Raises:
            UsageError: The sweep's `Client` is closed.
        """
        return self._client.cancel_jobs([job for job in self._jobs if not job.done()])

    def __repr__(self) -> str:
        counts = " ".join(f"{state}={n}" for state, n in sorted(self.counts().items()))
        return f"<Sweep {self.name} tasks={len(self._jobs)} {counts} key={self.key}>"


def want_progress(progress: bool | None) -> bool:
    """Show a progress bar if asked, or by default when stderr is a terminal."""
    if progress is not None:
        return progress
    return sys.stderr.isatty()
