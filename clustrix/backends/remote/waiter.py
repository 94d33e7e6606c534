"""Results before the scheduler's bookkeeping: one agent `wait` at a time per backend.

A result is ready once the runner's result file exists, which is before the
scheduler's epilog and job accounting end. So beside the poller (which asks the
scheduler and the agent at `job_poll_interval`'s pace), one long agent call (`wait`,
on its own channel of the same SSH connection) watches the result and exit files of
every live run on the login node and returns as soon as one appears, or after
`timeout` seconds. Its results are delivered at once; a new exit file (an element
ended, maybe without a result) wakes the poller, which asks the scheduler how it
ended. When a run is added, the call in flight is cancelled (its remote process ends
with its channel) and a new one covers the new run too.
`ClusterConfig.result_wait` = False turns the waiter off (results then come with the
poller's ticks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import weakref
from collections.abc import Awaitable, Callable, Collection

from ..._exceptions import ClusterConnectionError, CommandError
from ...oncluster.protocol import RunStatus, WaitAnswer, WaitRequest
from .area import RemoteArea
from .run import Run

log = logging.getLogger("clustrix")
WAIT_SECONDS = 5.0  # how long one agent `wait` lasts at most
_MIN_CYCLE = 0.05  # seconds between the starts of two waits (a burst of submissions: one)
_BACKOFF = 2.0  # seconds before trying again after a failed wait


class ResultWaiter:
    """Keeps one agent `wait` running over the live runs and hands on what it finds."""

    def __init__(
        self,
        area: RemoteArea,
        runs: Callable[[], Collection[Run]],
        deliver: Callable[[Run, RunStatus], Awaitable[None]],
        ended: Callable[[], None],
        *,
        inline_limit: int,
        timeout: float = WAIT_SECONDS,
        watch: str = "auto",
    ) -> None:
        self._area = area
        self._runs = runs
        self._deliver = deliver
        self._ended = ended
        self._inline_limit = inline_limit
        self.timeout = timeout
        self.watch = watch  # "auto" (inotify where it sees every write) or "stat"
        self._changed = asyncio.Event()
        self._exits: weakref.WeakKeyDictionary[Run, set[int]] = weakref.WeakKeyDictionary()
        self.calls = 0  # agent `wait` calls started (for tests and benchmarks)
        self.woken = 0  # of which returned because a watched file appeared
        self.delivered = 0  # results handed on
        self.last_watch = ""  # how the agent watched the last time ("inotify" or "stat")

    def changed(self) -> None:
        """The set of runs changed (a submission): restart the wait to cover it."""
        self._changed.set()

    async def run_forever(self) -> None:
        """Wait, deliver, repeat (until cancelled: the remote wait ends with it)."""
        loop = asyncio.get_running_loop()
        started = -math.inf
        while True:
            if not self._live():
                self._changed.clear()
                await self._changed.wait()
                continue
            pause = started + _MIN_CYCLE - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            self._changed.clear()
            runs = self._live()
            started = loop.time()
            answer = await self._call(self._request(runs))
            if answer is None:
                continue
            try:
                await self._take(runs, answer)
            except Exception as error:  # the poller collects what could not be taken here
                if not isinstance(error, ClusterConnectionError | CommandError | OSError):
                    log.exception("unexpected error while taking results")
                await self._pause()

    def _live(self) -> list[Run]:
        return [run for run in self._runs() if run.uncollected]

    def _request(self, runs: Collection[Run]) -> WaitRequest:
        return {
            "runs": [
                {
                    "dir": run.directory,
                    "count": len(run.submission.jobs),
                    "chunksize": run.chunksize,
                    # an exit already seen does not end the next wait
                    "elements": sorted(run.live - self._exits.get(run, set())),
                    "tasks": sorted(run.uncollected),
                    "tails": {},
                }
                for run in runs
            ],
            "inline_limit": self._inline_limit,
            "timeout": self.timeout,
            "watch": self.watch,
        }

    async def _call(self, request: WaitRequest) -> WaitAnswer | None:
        """The agent's answer; None if the runs changed first or the call failed."""
        self.calls += 1
        call = asyncio.ensure_future(self._area.wait(request))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait({call, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            call.cancel()  # (no-op once done) stops the remote process
            changed.cancel()
            await asyncio.gather(call, changed, return_exceptions=True)
        if call.cancelled():
            return None
        error = call.exception()
        if error is None:
            return call.result()
        if not isinstance(error, ClusterConnectionError | CommandError | OSError | ValueError):
            log.error("unexpected error while waiting for results", exc_info=error)
        await self._pause()
        return None

    async def _pause(self) -> None:
        """After a failure: the poller still collects everything; try again later."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_BACKOFF):  # (wait_for may swallow a cancel)
                await self._changed.wait()

    async def _take(self, runs: Collection[Run], answer: WaitAnswer) -> None:
        self.last_watch = answer["watch"]
        self.woken += answer["woke"]
        ended = False
        for run in runs:
            report = answer["runs"].get(run.directory)
            if report is None:
                continue
            seen = self._exits.setdefault(run, set())
            elements = report["elements"]
            exits = {int(e) for e, files in elements.items() if files.get("exit") is not None}
            if exits - seen:
                seen |= exits
                ended = True
            if report["results"]:
                self.delivered += len(report["results"])
                await self._deliver(run, report)
        if ended:
            self._ended()  # the poller asks the scheduler how they ended
