"""What every remote backend shares: staged runs, one poller, collection and cleanup.

A submission becomes a *run*: a directory on the login node and `elements` (array
elements, or detached processes), each running `chunksize` consecutive tasks. The
backend-specific part is small: how to launch a run, how to learn the fate of its
elements (the scheduler, or the agent's pid files) and how to cancel elements. The
poller here asks about ALL live runs at once per tick (a constant number of remote
commands, whatever the number of jobs) and brings finished results back inline.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import contextlib
import logging
import math
import posixpath
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..._config import ClusterConfig
from ..._environment import EnvironmentSpec, mentioned_modules, spec_for_modules
from ..._exceptions import ClusterConnectionError, CommandError
from ..._job import Job
from ..._options import Replicate, Venv
from ..._payload import decode_result
from ..._states import JobState
from ..._tasks import TaskSet
from ..._units import format_time
from ...transport.base import Transport
from ..base import Backend, Stream, Submission
from .area import RemoteArea
from .envbuild import EnvironmentBuilder

log = logging.getLogger("clustrix")
_INLINE_LIMIT = 1 << 20  # results up to this size come back inside the poll answer
_ERROR_BUDGET = 300.0  # seconds of failing ticks (daemon restarts...) before jobs are LOST
_OUTSIDE = "cancelled outside clustrix"


@dataclass(frozen=True)
class Fate:
    """What is known about one element: its state, and its native job id."""

    state: JobState
    job_id: str | None = None
    reason: str | None = None
    exit_code: int | None = None


@dataclass(eq=False)
class Run:
    """A submission staged on the login node, and what is still to be collected."""

    submission: Submission
    directory: str
    chunksize: int
    elements: int
    started: float
    live: set[int] = field(default_factory=set)  # elements not settled yet
    uncollected: set[int] = field(default_factory=set)  # tasks without an outcome
    native: dict[str, Any] = field(default_factory=dict)  # backend's own ids
    outputs: dict[int, tuple[str, str]] = field(default_factory=dict)

    def tasks_of(self, element: int) -> range:
        count = len(self.submission.jobs)
        return range(element * self.chunksize, min((element + 1) * self.chunksize, count))


def auto_chunksize(tasks: int, slots: int) -> int:
    """About four elements per slot: few interpreter starts, still balanced."""
    return max(1, math.ceil(tasks / max(1, slots * 4)))


class RemoteRunsBackend(Backend):
    """The I/O every remote backend shares; subclasses launch, observe and cancel."""

    def __init__(self, config: ClusterConfig, transport: Transport, name: str) -> None:
        self._config = config
        self._area = RemoteArea(transport, config)
        self.environments = EnvironmentBuilder(self._area)
        self._specs: dict[tuple[frozenset[str], str, bool], EnvironmentSpec] = {}
        self._name = name
        self._tasks = TaskSet(f"{name} backend")
        self._runs: dict[str, Run] = {}
        self._where: dict[Job[Any], tuple[Run, int]] = {}
        self._unfinished: set[Run] = set()
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self.poll_commands = 0  # remote commands issued by the poller (for tests)
        self.poll_ticks = 0

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

    def element_fate(self, run: Run, element: int, report: dict[str, Any]) -> Fate | None:
        """The fate told by the agent's files (pid, exit code), if any."""
        exit_code = report.get("exit")
        if exit_code is not None:
            state = JobState.CANCELLED if report.get("cancelled") else JobState.FAILED
            return Fate(state, exit_code=exit_code)
        return None

    def merge_fate(
        self, run: Run, element: int, fate: Fate | None, report: dict[str, Any]
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
        environment = submission.resources.environment
        if isinstance(environment, Replicate):
            run.native["venv"] = await self._replicate(submission)
        elif isinstance(environment, Venv):
            run.native["venv"] = await self._area.expand(environment.path)
        await self.launch(run)
        self._runs[submission.key] = run
        for position, job in enumerate(submission.jobs):
            self._where[job] = (run, position)
            job.set_state(JobState.QUEUED, job_id=self.initial_job_id(run, position // chunksize))
        if self._poller is None:
            self._poller = self._tasks.spawn(self._poll_forever(), name=f"poll-{self._name}")
        self._wake.set()

    async def _replicate(self, submission: Submission) -> str:
        """The replicated environment for this payload (built once per hash).

        The spec (which may build wheels of editable distributions with pip) is worked
        out once per set of modules for the life of this client, not per submission.
        """
        config, payload = submission.config, submission.payload
        pickles = [payload.function, *payload.arguments]
        modules = frozenset(await asyncio.to_thread(mentioned_modules, pickles))
        key = (modules, config.replicate_scope, config.replicate_offline)
        if key not in self._specs:
            self._specs[key] = await asyncio.to_thread(
                spec_for_modules,
                modules,
                scope=config.replicate_scope,
                offline=config.replicate_offline,
            )
        return await self.environments.ensure(self._specs[key], offline=config.replicate_offline)

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

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
        request = {
            "inline_limit": _INLINE_LIMIT,
            "runs": [self._agent_request(run, fates.get(run, {})) for run in runs],
        }
        self.poll_commands += 1
        answer = await self._area.agent_call("status", request)
        for run in runs:
            await self._update(run, answer.get(run.directory, {}), fates.get(run, {}))

    def _agent_request(self, run: Run, fates: dict[int, Fate]) -> dict[str, Any]:
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

    async def _update(self, run: Run, report: dict[str, Any], fates: dict[int, Fate]) -> None:
        jobs = run.submission.jobs
        if not report.get("exists", True):
            self._fail_run(run, JobState.LOST, "its run directory disappeared from the cluster")
            return
        files = report.get("elements", {})
        for entry in files.values():
            entry.setdefault("now", report.get("now"))
        known: dict[int, Fate] = {}
        for element in sorted(run.live):
            fate = self.merge_fate(run, element, fates.get(element), files.get(str(element), {}))
            if fate is None:
                continue
            known[element] = fate
            state = JobState.RUNNING if fate.state.final else fate.state
            for task in run.tasks_of(element):  # ids first: results may come in this tick
                jobs[task].set_state(state, job_id=fate.job_id, reason=fate.reason)
        for key, blob in report.get("results", {}).items():
            task = int(key)
            path = posixpath.join(run.directory, "tasks", f"{task}.result")
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
        timeouts = set(report.get("timeouts", []))
        stderr = report.get("stderr", {})
        for element, fate in known.items():
            if not fate.state.final:
                continue
            for task in run.tasks_of(element):
                if task in run.uncollected:
                    run.uncollected.discard(task)
                    self._settle(run, jobs[task], fate, task in timeouts, stderr.get(str(task), ""))
            run.live.discard(element)
        if not run.uncollected:
            await self._finish(run)

    def _settle(self, run: Run, job: Job[Any], fate: Fate, timed_out: bool, tail: str) -> None:
        """End a task that has no result, in the most specific state known."""
        code = fate.exit_code
        limit = run.submission.resources.time
        if timed_out or fate.state is JobState.TIMEOUT:
            where = f" of {format_time(limit)}" if limit else ""
            job.fail(
                JobState.TIMEOUT,
                f"exceeded its time limit{where}",
                exit_code=code,
                stderr_tail=tail,
            )
        elif job.cancel_requested:
            job.fail(JobState.CANCELLED, "cancelled", exit_code=code, stderr_tail=tail)
        elif fate.state is JobState.CANCELLED:
            why = fate.reason or ""
            if _OUTSIDE not in why:
                why = f"{_OUTSIDE} ({why})" if why else _OUTSIDE
            job.reason = why
            job.fail(JobState.CANCELLED, why, exit_code=code, stderr_tail=tail)
        elif fate.state in (
            JobState.OUT_OF_MEMORY,
            JobState.NODE_FAIL,
            JobState.PREEMPTED,
            JobState.LOST,
        ):
            job.fail(
                fate.state,
                fate.reason or fate.state.value.lower(),
                exit_code=code,
                stderr_tail=tail,
            )
        elif code is not None and 128 < code < 128 + 65:
            job.fail(
                JobState.FAILED,
                f"killed by {_signal_name(code - 128)} (exit {code})",
                exit_code=code,
                stderr_tail=tail,
            )
        elif code is None:  # no exit status anywhere: say only what is known
            why = fate.reason or "it ended without recording an exit status"
            job.fail(JobState.FAILED, why, stderr_tail=tail)
        else:
            job.fail(
                JobState.FAILED, f"exited {code} without a result", exit_code=code, stderr_tail=tail
            )

    def _fail_run(self, run: Run, state: JobState, message: str) -> None:
        for job in run.submission.jobs:
            job.fail(state, message)
        self._runs.pop(run.submission.key, None)

    async def _finish(self, run: Run) -> None:
        self._runs.pop(run.submission.key, None)
        self._unfinished.add(run)  # if the client closes meanwhile, aclose() completes it
        if run.submission.config.cleanup_remote_files:
            # Keep what the tasks printed: the directory with their files goes now.
            tasks = list(range(len(run.submission.jobs)))
            request = {"runs": [{"dir": run.directory, "tasks": tasks}]}
            answer = await self._area.agent_call("outputs", request)
            for key, (out, err) in answer.get(run.directory, {}).items():
                run.outputs[int(key)] = (out, err)
            await self._area.transport.remove_tree(run.directory)
        self._unfinished.discard(run)

    # -- cancel, output, close -------------------------------------------------------------
    async def cancel(self, jobs: Sequence[Job[Any]]) -> None:
        by_run: dict[Run, set[int]] = {}
        for job in jobs:
            job.mark_cancel_requested()  # clustrix's own cancel (also on aclose)
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
        self._wake.set()
        await asyncio.gather(*(job._wait() for job in jobs), return_exceptions=True)

    async def read_output(self, job: Job[Any], stream: Stream) -> str:
        where = self._where.get(job)
        if where is None:
            return ""
        run, position = where
        if position in run.outputs:
            return run.outputs[position][0 if stream == "stdout" else 1]
        suffix = "out" if stream == "stdout" else "err"
        tasks = posixpath.join(run.directory, "tasks")
        paths = [posixpath.join(tasks, f"{position}.{suffix}")]
        if not job.done():  # a running task writes to its element's scratch file
            paths.append(posixpath.join(tasks, f".running-e{position // run.chunksize}.{suffix}"))
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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
