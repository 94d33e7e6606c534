"""The side of `Client` its jobs use: submitting in the background (retries too),
cancelling and reading output. A mixin of `Client`, which provides the attributes."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal

from . import _selection
from ._batcher import own_error
from ._exceptions import UsageError
from ._job import Cancellation, Job
from ._job_control import cancel_controls

if TYPE_CHECKING:
    from ._tasks import TaskSet
    from .backends import Backend, Submission


class ClientJobs:
    """Mixin: how a `Client` starts submissions and serves its jobs' requests."""

    _loop: asyncio.AbstractEventLoop | None
    _state: str
    _tasks: TaskSet

    if TYPE_CHECKING:  # provided by ClientRecords (a stub here would shadow it)

        async def _record(self, backend: Backend, submission: Submission) -> None: ...

    def _accepting(self) -> bool:
        """Whether this client can still start submissions (retries, too)."""
        return self._state == "open" and not self._tasks.closed

    def _resubmit(self, backend: Backend, submission: Submission) -> bool:
        """Start a retry's submission in the background; False if the client closed."""
        if not self._accepting():
            return False
        self._tasks.spawn(self._submit(backend, submission), name=f"submit-{submission.key}")
        return True

    async def _submit(self, backend: Backend, submission: Submission) -> None:
        try:
            await self._record(backend, submission)
            await backend.submit(submission)
        except asyncio.CancelledError:
            for job in submission.jobs:
                job.cancelled_before_start()
            raise
        except Exception as error:
            for job in submission.jobs:
                job.reject(own_error(error) if submission.batched else error)

    # -- used by Job and Sweep -----------------------------------------------------------
    def spawn(self, coroutine: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run a background task this client owns (cancelled when it closes).

        Args:
            coroutine: The task's coroutine.
            name: The task's name.
        """
        self._tasks.spawn(coroutine, name=name)

    def cancel_jobs(self, jobs: Sequence[Job[Any]]) -> Cancellation:
        """Cancel `jobs` of this client (what `Job.cancel` and `Sweep.cancel` call).

        Args:
            jobs: Jobs made by this client.

        Raises:
            UsageError: The client is closed.
        """
        loop = self._loop
        if loop is None or self._state == "closed":
            raise UsageError("the Client of these jobs is closed")

        async def cancel() -> None:
            await cancel_controls([job._control for job in jobs if not job.done()])

        if _selection._running_loop() is loop:
            for job in jobs:  # now: a call still waiting for its batch then never goes
                job._control.mark_cancel_requested()
            # Owned by the client, so the caller's cancellation cannot interrupt it.
            task: asyncio.Task[None] = self._tasks.spawn(cancel(), name="cancel")
            return Cancellation(task)
        return Cancellation(asyncio.run_coroutine_threadsafe(cancel(), loop))

    async def read_output(self, job: Job[Any], stream: Literal["stdout", "stderr"]) -> str:
        """The output of `job` so far, on the client's loop (what `Job.stdout` calls).

        Args:
            job: A job of this client.
            stream: ``"stdout"`` or ``"stderr"``.
        """
        backend = job._control.backend
        return "" if backend is None else await backend.read_output(job._control, stream)
