"""Results before the scheduler's bookkeeping: one agent `watch` stream per backend.

A result is ready once the runner's result file exists, which is before the
scheduler's epilog and job accounting end. So beside the poller (which asks the
scheduler and the agent at `job_poll_interval`'s pace), one long-running agent
(``_agent.py watch``, on its own channel of the same SSH connection) watches the
result and exit files of every live run on the login node and answers with a line
as soon as one appears. The waiter sends it the live runs whenever they change (a
line on its stdin: no new process per submission or per result). Its results are
delivered at once; a new exit file (an element ended, maybe without a result) wakes
the poller, which asks the scheduler how it ended. With no live run for IDLE_SECONDS
the stream is closed; it opens again with the next submission.
`ClusterConfig.result_wait` = False turns the waiter off (results then come with the
poller's ticks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Collection

from ..._exceptions import ClusterConnectionError, CommandError
from ...oncluster.protocol import RunStatus, WaitAnswer, WaitRequest
from ...transport.base import CommandStream
from .area import RemoteArea
from .run import Run

log = logging.getLogger("clustrix")
WAIT_SECONDS = 5.0  # the agent re-checks its folders at least this often
IDLE_SECONDS = 60.0  # the stream outlives the last live run by this long
_BACKOFF = 2.0  # seconds before trying again after a failed stream


class ResultWaiter:
    """Keeps one agent `watch` running over the live runs and hands on what it finds."""

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
        self.calls = 0  # agent `watch` streams started (for tests and benchmarks)
        self.woken = 0  # of which returned because a watched file appeared
        self.delivered = 0  # results handed on
        self.last_watch = ""  # how the agent watched the last time ("inotify" or "stat")

    def changed(self) -> None:
        """The set of runs changed (a submission): tell the agent to cover it."""
        self._changed.set()

    async def run_forever(self) -> None:
        """Keep a `watch` stream while runs live; deliver what it reports (until
        cancelled: the remote agent ends with its channel)."""
        while True:
            if not self._live():
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                stream = await self._area.watch()
            except (ClusterConnectionError, CommandError, OSError) as error:
                log.debug("cannot start the result watcher: %s", error)
                await self._pause()
                continue
            self.calls += 1
            try:
                idle = await self._follow(stream)
            except Exception as error:  # the poller collects what could not be taken here
                if not isinstance(error, ClusterConnectionError | CommandError | OSError):
                    log.exception("unexpected error while waiting for results")
                idle = False
            finally:
                await stream.aclose()
            if not idle:
                await self._pause()  # (an agent that cannot run is not restarted in a loop)

    async def _follow(self, stream: CommandStream) -> bool:
        """Send the live runs whenever they change; take each answer as it comes.
        Returns True after IDLE_SECONDS without a live run, False when the agent ended."""
        sent: list[str] | None = None
        reading = asyncio.ensure_future(stream.readline())
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            while True:
                runs = self._live()
                directories = [run.directory for run in runs]
                if directories != sent:
                    self._changed.clear()
                    await stream.send(json.dumps(self._request(runs)).encode())
                    sent = directories
                idle = None if runs else IDLE_SECONDS
                done, _ = await asyncio.wait(
                    {reading, changed}, timeout=idle, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    return True  # idle: the next submission opens a new stream
                if changed in done:
                    self._changed.clear()
                    changed = asyncio.ensure_future(self._changed.wait())
                if reading in done:
                    line = reading.result()
                    if not line:
                        return False  # the agent ended (its own time limit, or it failed)
                    answer: WaitAnswer = json.loads(line)
                    await self._take(self._live(), answer)
                    reading = asyncio.ensure_future(stream.readline())
        finally:
            for future in (reading, changed):
                future.cancel()
            await asyncio.gather(reading, changed, return_exceptions=True)

    def _live(self) -> list[Run]:
        return [run for run in self._runs() if run.uncollected]

    def _request(self, runs: Collection[Run]) -> WaitRequest:
        return {
            "runs": [
                {
                    "dir": run.directory,
                    "count": len(run.submission.jobs),
                    "chunksize": run.chunksize,
                    # an exit already seen is not reported again
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
