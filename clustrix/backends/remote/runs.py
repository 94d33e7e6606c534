"""What every remote backend shares: staged runs, one poller, collection and cleanup.

A submission becomes a *run*: a directory on the login node and `elements` (array
elements, or detached processes), each running `chunksize` consecutive tasks. The
backend-specific part is small: how to launch a run, how to learn the fate of its
elements (the scheduler, or the agent's pid files) and how to cancel elements. The
poller here asks about ALL live runs at once per tick (a constant number of remote
commands, whatever the number of jobs) and brings finished results back inline;
beside it, a `ResultWaiter` hands on each result as soon as its file exists.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import logging
import math
from collections.abc import Sequence
from typing import Any

from ..._config import ClusterConfig
from ..._exceptions import ClusterConnectionError, CommandError
from ..._job import JobControl
from ..._payload import decode_result
from ..._record_types import JobUpdate
from ..._states import JobState
from ..._tasks import TaskSet
from ...oncluster.layout import ERR, OUT, RESULT
from ...oncluster.protocol import ElementReport, RunQuery, RunStatus
from ...transport.base import Transport
from ..base import Backend, Stream, Submission, wait_all
from .area import RemoteArea
from .envbuild import EnvironmentBuilder
from .reattach import adopt
from .run import Fate, Run, auto_chunksize, settle_task, unreported
from .waiter import ResultWaiter

__all__ = ["Fate", "RemoteRunsBackend", "Run", "auto_chunksize"]

log = logging.getLogger("clustrix")
_INLINE_LIMIT = 1 << 20  # results up to this size come back inside the poll answer
_ERROR_BUDGET = 300.0  # seconds of failing ticks (daemon restarts...) before jobs are LOST


class RemoteRunsBackend(Backend):
    """The I/O every remote backend shares; subclasses launch, observe and cancel."""

    def __init__(self, config: ClusterConfig, transport: Transport, name: str) -> None:
        self._config = config
        self._area = RemoteArea(transport, config)
        self.environments = EnvironmentBuilder(self._area)
        self._name = name
        self._tasks = TaskSet(f"{name} backend")
        self._runs: dict[str, Run] = {}
        self._where: dict[JobControl[Any], tuple[Run, int]] = {}
        self._unfinished: set[Run] = set()
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self.waiter: ResultWaiter | None = None
        self._waiting: asyncio.Task[None] | None = None
        if config.result_wait and config.max_channels > 1:  # (it keeps one channel busy)
            runs = self._runs.values
            self.waiter = ResultWaiter(
                self._area, runs, self._deliver, self._wake.set, inline_limit=_INLINE_LIMIT
            )
        self.poll_commands = 0  # remote commands issued by the poller (for tests)
        self.poll_ticks = 0
        self.submissions = 0  # runs launched (a sweep or a micro-batch is one)

    # -- what a subclass provides --------------------------------------------------------
    @abc.abstractmethod
    def plan(self, submission: Submission) -> int:
        """The chunksize (tasks per element) for this submission."""

    @abc.abstractmethod
    async def launch(self, run: Run) -> None:
        """Start the staged run (exactly once, even across a lost connection)."""

    @abc.abstractmethod
    async def observe(self, runs: Sequence[Run]) -> dict[Run, dict[int, Fate]]:
        """The fate of the live elements of `runs` that the cluster itself reports."""

    @abc.abstractmethod
    async def cancel_elements(self, run: Run, elements: Sequence[int]) -> set[int]:
        """Cancel these elements; return those that are certain never to run."""

    def element_fate(self, run: Run, element: int, report: ElementReport) -> Fate | None:
        """The fate told by the agent's files (pid, exit code), if any."""
        exit_code = report.get("exit")
        if exit_code is not None:
            state = JobState.CANCELLED if report.get("cancelled") else JobState.FAILED
            return Fate(state, exit_code=exit_code)
        return None

    def merge_fate(
        self, run: Run, element: int, fate: Fate | None, report: ElementReport
    ) -> Fate | None:
        """One element's fate from what the cluster reported (`observe`) and the
        agent's `report` of its files; by default the cluster's word wins."""
        return fate or self.element_fate(run, element, report)

    def initial_job_id(self, run: Run, element: int) -> str | None:
        """The element's native id as soon as it is submitted (if known then)."""
        return None

    def log_path(self, run: Run, element: int) -> str | None:
        """Where the element's own stderr goes (None: the default ``logs/E.err``)."""
        return None

    # -- submission ----------------------------------------------------------------------
    async def submit(self, submission: Submission) -> None:
        await self._area.prepare()
        chunksize = self.plan(submission)
        count = len(submission.jobs)
        elements = math.ceil(count / chunksize)
        directory = await self._area.stage(
            submission, chunksize, time_limit=self.runner_time_limit(submission)
        )
        loop = asyncio.get_running_loop()
        run = Run(submission, directory, chunksize, elements, loop.time())
        run.live, run.uncollected = set(range(elements)), set(range(count))
        run.venv = await self.environments.venv_for(submission)
        await self.launch(run)
        self.submissions += 1
        await self.follow(run)

    async def follow(self, run: Run) -> None:
        """Poll `run` from now on (launched now, or by an earlier process)."""
        submission = run.submission
        self._runs[submission.key] = run
        for position, job in enumerate(submission.jobs):
            self._where[job] = (run, position)
            element = position // run.chunksize
            job.set_state(JobState.QUEUED, job_id=self.initial_job_id(run, element))
        if self._poller is None:
            self._poller = self._tasks.spawn(self._poll_forever(), name=f"poll-{self._name}")
        if self.waiter is not None:
            if self._waiting is None:
                name = f"wait-{self._name}"
                self._waiting = self._tasks.spawn(self.waiter.run_forever(), name=name)
            self.waiter.changed()
        self._wake.set()
        # cancel() came while this was being submitted (it found no run then): now.
        await self._cancel_now([job for job in submission.jobs if job.cancel_requested])

    async def recover(self, run: Run) -> bool:
        """Rebuild what `launch` knew of a run an earlier process launched; False if
        it never reached the cluster (its tasks are then settled from their files)."""
        return True

    async def attach(self, submission: Submission, run_dir: str, age: float, gone: str) -> None:
        await adopt(self, submission, run_dir, age, gone)

    def runner_time_limit(self, submission: Submission) -> int | None:
        """Walltime the runner enforces itself (schedulers enforce their own)."""
        return None

    # -- polling -------------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        failing_since: float | None = None
        while True:
            if not self._runs:
                self._wake.clear()
                await self._wake.wait()
            loop = asyncio.get_running_loop()
            delay = self._interval()
            try:
                await self._poll_once()
                failing_since = None
            except Exception as error:  # the poller must outlive any one bad tick
                if not isinstance(error, ClusterConnectionError | CommandError | OSError):
                    log.exception("unexpected error while polling %s", self._name)
                # A restarting slurmctld or a lost connection: keep trying, slower,
                # within a bounded budget; nothing is resubmitted.
                failing_since = failing_since or loop.time()
                delay = min(self._config.job_poll_interval, 2.0)
                if loop.time() - failing_since > _ERROR_BUDGET:
                    for run in list(self._runs.values()):
                        self._fail_run(run, JobState.LOST, f"cannot reach the cluster: {error}")
            self._wake.clear()
            # (not wait_for: on 3.11 it can swallow a cancel that comes as the waiter
            # sets the event, and the poller would then outlive aclose)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _interval(self) -> float:
        """Quick for young runs, slower for old ones, never above job_poll_interval."""
        now = asyncio.get_running_loop().time()
        youngest = min((now - run.started for run in self._runs.values()), default=0.0)
        return min(self._config.job_poll_interval, max(0.1, youngest * 0.02))

    async def _poll_once(self) -> None:
        runs = list(self._runs.values())
        if not runs:
            return
        self.poll_ticks += 1
        fates = await self.observe(runs)
        queries = [self._agent_request(run, fates.get(run, {})) for run in runs]
        self.poll_commands += 1
        answer = await self._area.status({"inline_limit": _INLINE_LIMIT, "runs": queries})
        for run in runs:
            if self._current(run):  # (the waiter may have finished it)
                report = answer.get(run.directory) or unreported()
                await self._update(run, report, fates.get(run, {}))

    def _agent_request(self, run: Run, fates: dict[int, Fate]) -> RunQuery:
        ended = [e for e, fate in fates.items() if fate.state.final]
        tails = {str(e): self.log_path(run, e) or "" for e in ended}
        return {
            "dir": run.directory,
            "count": len(run.submission.jobs),
            "chunksize": run.chunksize,
            "elements": sorted(run.live),
            "tasks": sorted(run.uncollected),
            "tails": tails,
        }

    async def _update(self, run: Run, report: RunStatus, fates: dict[int, Fate]) -> None:
        jobs = run.submission.jobs
        if not report["exists"]:
            self._fail_run(run, JobState.LOST, "its run directory disappeared from the cluster")
            return
        files = report["elements"]
        known: dict[int, Fate] = {}
        for element in sorted(run.live):
            fate = self.merge_fate(run, element, fates.get(element), files.get(str(element), {}))
            if fate is None:
                continue
            known[element] = fate
            state = JobState.RUNNING if fate.state.final else fate.state
            for task in run.tasks_of(element):  # ids first: results may come in this tick
                jobs[task].set_state(state, job_id=fate.job_id, reason=fate.reason)
        await self._collect(run, report)
        timeouts, stderr = set(report["timeouts"]), report["stderr"]
        for element, fate in known.items():
            if not fate.state.final:
                continue
            for task in run.tasks_of(element):
                if task in run.uncollected:
                    run.uncollected.discard(task)
                    settle_task(run, jobs[task], fate, task in timeouts, stderr.get(str(task), ""))
            run.live.discard(element)
        await self._finish_if_collected(run)

    async def _collect(self, run: Run, report: RunStatus) -> None:
        """Resolve the tasks whose results the agent reported."""
        jobs = run.submission.jobs
        for key, blob in report["results"].items():
            task = int(key)
            if task not in run.uncollected:
                continue  # (collected by the waiter or the poller meanwhile)
            path = run.layout.task(task, RESULT)
            data = (
                base64.b64decode(blob)
                if blob is not None
                else await self._area.transport.read_file(path)
            )
            run.uncollected.discard(task)
            try:
                jobs[task].set_result(decode_result(data, job_id=jobs[task].job_id))
            except BaseException as error:
                jobs[task].set_exception(error)
            element = task // run.chunksize
            if run.uncollected.isdisjoint(run.tasks_of(element)):
                run.live.discard(element)  # every task has its result: nothing left to ask

    def _current(self, run: Run) -> bool:
        """Whether `run` is still live here (the poller and the waiter both end runs)."""
        return self._runs.get(run.submission.key) is run

    async def _finish_if_collected(self, run: Run) -> None:
        if not run.uncollected and self._current(run):
            await self._finish(run)

    async def _deliver(self, run: Run, report: RunStatus) -> None:
        """Results the waiter found, maybe before the scheduler knows their elements
        ended: each task gets its element's id first; the rest is the poller's."""
        if not self._current(run):
            return
        for key in report["results"]:
            element = int(key) // run.chunksize
            files = report["elements"].get(str(element), {})
            fate = self.merge_fate(run, element, None, files)
            if fate is not None and int(key) in run.uncollected:
                run.submission.jobs[int(key)].set_state(JobState.RUNNING, job_id=fate.job_id)
        await self._collect(run, report)
        await self._finish_if_collected(run)

    def _fail_run(self, run: Run, state: JobState, message: str) -> None:
        for job in run.submission.jobs:
            job.fail(state, message)
        self._runs.pop(run.submission.key, None)

    async def _finish(self, run: Run) -> None:
        self._runs.pop(run.submission.key, None)
        self._unfinished.add(run)  # if the client closes meanwhile, aclose() completes it
        if run.submission.config.cleanup_remote_files:
            # Keep what the tasks printed: the directory with their files goes now.
            jobs = run.submission.jobs
            run.outputs.update(await self._area.outputs(run.directory, range(len(jobs))))
            if self.records is not None:
                for position, (out, err) in run.outputs.items():
                    if out or err:
                        self.records.update(
                            JobUpdate(jobs[position].key, stdout_tail=out, stderr_tail=err)
                        )
                await self.records.flush()  # the collection is recorded before it goes
            await self._area.transport.remove_tree(run.directory)
        self._unfinished.discard(run)

    # -- cancel, output, close -------------------------------------------------------------
    async def cancel(self, jobs: Sequence[JobControl[Any]]) -> None:
        for job in jobs:
            job.mark_cancel_requested()  # clustrix's own cancel (also on aclose)
        await self._cancel_now(jobs)
        self._wake.set()
        await wait_all(jobs)

    async def _cancel_now(self, jobs: Sequence[JobControl[Any]]) -> None:
        """Cancel the elements of these jobs' runs (jobs not submitted yet: nothing)."""
        by_run: dict[Run, set[int]] = {}
        for job in jobs:
            where = self._where.get(job)
            if where is not None and where[0].submission.key in self._runs:
                run, position = where
                by_run.setdefault(run, set()).add(position // run.chunksize)
        for run, elements in by_run.items():
            for element in await self.cancel_elements(run, sorted(elements & run.live)):
                run.live.discard(element)
                for task in run.tasks_of(element):
                    if task in run.uncollected:
                        run.uncollected.discard(task)
                        run.submission.jobs[task].fail(
                            JobState.CANCELLED, "cancelled before it started"
                        )

    async def read_output(self, job: JobControl[Any], stream: Stream) -> str:
        where = self._where.get(job)
        if where is None:
            return ""
        run, position = where
        if position in run.outputs:
            return run.outputs[position][0 if stream == "stdout" else 1]
        suffix = OUT if stream == "stdout" else ERR
        paths = [run.layout.task(position, suffix)]
        if not job.done():  # a running task writes to its element's scratch file
            paths.append(f"{run.layout.scratch(position // run.chunksize)}.{suffix}")
        for path in paths:
            try:
                return (await self._area.transport.read_file(path)).decode(errors="replace")
            except FileNotFoundError:
                continue
        return ""

    async def aclose(self, *, cancel_running: bool) -> None:
        if cancel_running:
            live = [job for job in self._where if not job.done()]
            if live:
                await self.cancel(live)
        await self._tasks.aclose()
        # Every task has an outcome but the poller did not clean up: settled by cancel()
        # (queued elements never start) or stopped mid-tick; or cleanup was interrupted.
        # Runs with live tasks stay: the client detaches from them.
        settled = [run for run in self._runs.values() if not run.uncollected]
        for run in [*settled, *self._unfinished]:
            try:
                await self._finish(run)
            except (ClusterConnectionError, CommandError, OSError) as error:
                log.warning("could not remove the run directory %s: %s", run.directory, error)
