"""The `ssh` backend: tasks run as detached processes on a host with no scheduler.

A submission is staged into ``runs/<key>`` and started by ONE command: a driver in
its own session feeds the array elements to ``xargs -P`` (bounded by the host's CPUs,
the task's `cores` and `max_concurrent`), and each element runs ``job.sh`` in a
session of its own (so cancelling kills exactly its process group). Elements write
pid and exit-code files; one agent call per poll tick reports on every live run and
brings back the finished results inline. Walltime is enforced by the runner.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import posixpath
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._config import ClusterConfig
from .._exceptions import ClusterConnectionError
from .._job import Job
from .._payload import decode_result
from .._states import JobState
from .._tasks import TaskSet
from .._units import format_time
from ..transport.base import Transport
from .base import Backend, Stream, Submission
from .remote import RemoteArea
from .scripts import render_ssh_script

_LAUNCH = r"""
cd "$1" || exit 3
if [ -e logs/driver.log ]; then echo already-launched; exit 0; fi
setsid nohup sh ./driver.sh "$2" "$3" >logs/driver.log 2>&1 </dev/null &
echo launched
"""
_DRIVER = r"""#!/bin/sh
# clustrix driver: runs elements 0..$1-1 of this run, $2 at a time, each in its own session.
cd "$(dirname "$0")" || exit 3
# The absolute path shows in each element's command line: the agent checks it there
# before it trusts (or kills) a pid.
# (GNU xargs stops at a command killed by a signal: the `|| true` keeps it going after
# a cancelled element.)
seq 0 $(($1 - 1)) | xargs -P "$2" -I{} sh -c 'setsid sh "$0" "$1" || true' "$PWD/job.sh" {}
"""
_INLINE_LIMIT = 1 << 20


@dataclass(eq=False)
class _RemoteRun:
    submission: Submission
    directory: str
    chunksize: int
    started: float
    elements: set[int]
    uncollected: set[int]
    element_pids: dict[int, int] = field(default_factory=dict)
    outputs: dict[int, tuple[str, str]] = field(default_factory=dict)

    def tasks_of(self, element: int) -> range:
        count = len(self.submission.jobs)
        return range(element * self.chunksize, min((element + 1) * self.chunksize, count))


def auto_chunksize(tasks: int, slots: int) -> int:
    """About four elements per slot: few interpreter starts, still balanced."""
    return max(1, math.ceil(tasks / max(1, slots * 4)))


class SSHBackend(Backend):
    """Runs tasks on one SSH host as detached process groups."""

    def __init__(self, config: ClusterConfig, transport: Transport) -> None:
        self._config = config
        self._area = RemoteArea(transport, config)
        self._host = config.cluster_host or "localhost"
        self._tasks = TaskSet(f"ssh backend {self._host}")
        self._runs: dict[str, _RemoteRun] = {}
        self._where: dict[Job[Any], tuple[_RemoteRun, int]] = {}
        self._wake = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._unfinished: set[_RemoteRun] = set()

    async def submit(self, submission: Submission) -> None:
        area = self._area
        await area.prepare()
        resources = submission.resources
        cores = min(resources.cores, area.cpus)
        slots = max(1, area.cpus // cores)
        count = len(submission.jobs)
        chunksize = submission.chunksize or auto_chunksize(count, slots)
        elements = math.ceil(count / chunksize)
        parallel = min(elements, resources.max_concurrent or slots)
        run_dir = await area.stage(submission, chunksize, time_limit=resources.time)
        script = render_ssh_script(self._config, resources, run_dir, area.runner, submission.key)
        await asyncio.gather(
            area.transport.write_file(posixpath.join(run_dir, "job.sh"), script.encode()),
            area.transport.write_file(posixpath.join(run_dir, "driver.sh"), _DRIVER.encode()),
        )
        launch = ["sh", "-c", _LAUNCH, "sh", run_dir, str(elements), str(parallel)]
        try:
            await area.transport.run(launch, idempotent=False)
        except ClusterConnectionError as error:
            if not error.transient:
                raise
            # It may have started: the launcher refuses to start a run twice, so
            # asking again (on a fresh connection) is safe and tells us.
            await area.transport.run(launch)
        run = _RemoteRun(
            submission,
            run_dir,
            chunksize,
            asyncio.get_running_loop().time(),
            set(range(elements)),
            set(range(count)),
        )
        self._runs[submission.key] = run
        for position, job in enumerate(submission.jobs):
            self._where[job] = (run, position)
            job.set_state(JobState.QUEUED)
        if self._poller is None:
            self._poller = self._tasks.spawn(self._poll_forever(), name=f"poll-{self._host}")
        self._wake.set()

    # -- polling -------------------------------------------------------------------------
    async def _poll_forever(self) -> None:
        failures = 0
        while True:
            if not self._runs:
                self._wake.clear()
                await self._wake.wait()
            try:
                await self._poll_once()
                failures = 0
            except (ClusterConnectionError, OSError) as error:
                failures += 1
                if failures > 20:
                    for run in list(self._runs.values()):
                        self._fail_run(run, JobState.LOST, f"cannot reach the host: {error}")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval())

    def _interval(self) -> float:
        now = asyncio.get_running_loop().time()
        youngest = min((now - run.started for run in self._runs.values()), default=0.0)
        return min(self._config.job_poll_interval, max(0.1, youngest * 0.05))

    async def _poll_once(self) -> None:
        runs = list(self._runs.values())
        if not runs:
            return
        request = {
            "inline_limit": _INLINE_LIMIT,
            "runs": [
                {
                    "dir": run.directory,
                    "count": len(run.submission.jobs),
                    "chunksize": run.chunksize,
                    "elements": sorted(run.elements),
                    "tasks": sorted(run.uncollected),
                }
                for run in runs
            ],
        }
        answer = await self._area.agent_call("status", request)
        for run in runs:
            await self._update(run, answer.get(run.directory, {}))

    async def _update(self, run: _RemoteRun, report: dict[str, Any]) -> None:
        jobs = run.submission.jobs
        if not report.get("exists", True):
            self._fail_run(run, JobState.LOST, "its run directory disappeared from the host")
            return
        for key, blob in report.get("results", {}).items():
            task = int(key)
            data = (
                base64.b64decode(blob)
                if blob is not None
                else await self._area.transport.read_file(
                    posixpath.join(run.directory, "tasks", f"{task}.result")
                )
            )
            run.uncollected.discard(task)
            try:
                jobs[task].set_result(decode_result(data, job_id=jobs[task].job_id))
            except BaseException as error:
                jobs[task].set_exception(error)
        timeouts = set(report.get("timeouts", []))
        stderr = report.get("stderr", {})
        for key, state in report.get("elements", {}).items():
            element = int(key)
            pid = state.get("pid")
            if pid:
                run.element_pids[element] = pid
                for task in run.tasks_of(element):
                    jobs[task].set_state(JobState.RUNNING, job_id=f"{self._host}:{pid}")
            if state.get("alive") or (pid is None and state.get("exit") is None):
                continue  # running, or not started yet
            for task in run.tasks_of(element):
                if task not in run.uncollected:
                    continue
                run.uncollected.discard(task)
                self._settle_without_result(
                    jobs[task], state, task in timeouts, stderr.get(str(task), "")
                )
            run.elements.discard(element)
        if not run.uncollected:
            await self._finish(run)

    def _settle_without_result(
        self, job: Job[Any], state: dict[str, Any], timed_out: bool, tail: str
    ) -> None:
        code = state.get("exit")
        if timed_out:
            limit = format_time(self._config_time(job))
            job.fail(JobState.TIMEOUT, f"exceeded its time limit of {limit}", stderr_tail=tail)
        elif state.get("cancelled") or job.cancel_requested:
            job.fail(JobState.CANCELLED, "cancelled", exit_code=code)
        elif code is None:
            job.fail(JobState.FAILED, "its process was killed", stderr_tail=tail)
        elif 128 < code < 128 + 65:
            name = _signal_name(code - 128)
            job.fail(
                JobState.FAILED, f"killed by {name} (exit {code})", exit_code=code, stderr_tail=tail
            )
        else:
            job.fail(
                JobState.FAILED, f"exited {code} without a result", exit_code=code, stderr_tail=tail
            )

    def _config_time(self, job: Job[Any]) -> int:
        where = self._where.get(job)
        return (where[0].submission.resources.time or 0) if where else 0

    def _fail_run(self, run: _RemoteRun, state: JobState, message: str) -> None:
        for job in run.submission.jobs:
            job.fail(state, message)
        self._forget(run)

    def _forget(self, run: _RemoteRun) -> None:
        self._runs.pop(run.submission.key, None)
        for job in run.submission.jobs:
            self._where.pop(job, None)

    async def _finish(self, run: _RemoteRun) -> None:
        self._runs.pop(run.submission.key, None)
        self._unfinished.add(run)  # if the client closes meanwhile, aclose() completes it
        if run.submission.config.cleanup_remote_files:
            # Keep what the tasks printed: the directory with their files goes now.
            request = {
                "runs": [{"dir": run.directory, "tasks": list(range(len(run.submission.jobs)))}]
            }
            answer = await self._area.agent_call("outputs", request)
            for key, (out, err) in answer.get(run.directory, {}).items():
                run.outputs[int(key)] = (out, err)
            await self._area.transport.remove_tree(run.directory)
        self._unfinished.discard(run)

    # -- cancel, output, close -------------------------------------------------------------
    async def cancel(self, jobs: Sequence[Job[Any]]) -> None:
        by_run: dict[str, set[int]] = {}
        for job in jobs:
            where = self._where.get(job)
            if where is None:
                continue
            run, position = where
            by_run.setdefault(run.directory, set()).add(position // run.chunksize)
        if by_run:
            request = {"runs": [{"dir": d, "elements": sorted(e)} for d, e in by_run.items()]}
            answer = await self._area.agent_call("cancel", request)
            # Elements that had not started never will (they check their marker first).
            runs = {r.directory: r for r in self._runs.values()}
            for directory, elements in answer.get("prevented", {}).items():
                prevented = runs.get(directory)
                for element in elements if prevented is not None else []:
                    assert prevented is not None
                    prevented.elements.discard(element)
                    for task in prevented.tasks_of(element):
                        prevented.uncollected.discard(task)
                        prevented.submission.jobs[task].fail(
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
        path = posixpath.join(run.directory, "tasks", f"{position}.{suffix}")
        try:
            return (await self._area.transport.read_file(path)).decode(errors="replace")
        except FileNotFoundError:
            return ""

    async def aclose(self, *, cancel_running: bool) -> None:
        if cancel_running:
            live = [job for job in self._where if not job.done()]
            if live:
                await self.cancel(live)
        await self._tasks.aclose()
        for run in list(self._unfinished):  # collected, but cleanup was interrupted
            await self._finish(run)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
