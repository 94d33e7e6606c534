"""The `local` backend: tasks run in worker processes on this machine.

It uses the same payload and runner as a cluster job: the submission is staged into
a private run directory and each worker process is the runner in ``serve`` mode,
which loads the function once and then runs task after task. So a sweep of 1,000
tiny tasks starts as many interpreters as there are CPU slots, not 1,000. Cancelling
a running task kills its worker's process group; a fresh worker takes the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import sys
import tempfile
import warnings
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import ClusterConfig
from .._job import Job
from .._payload import decode_result
from .._states import JobState
from .._tasks import TaskSet
from .._units import format_time
from ..oncluster import runner as _runner
from ..oncluster.agent import tail as file_tail
from ..transport.local import LocalTransport
from .base import Backend, Stream, Submission

# Tasks queued at a worker, so it never waits for the client: 2 while tasks are long
# (a queued task waits behind its worker's current one), more once they prove tiny
# (then each round trip through the client would cost more than the task itself).
_PIPELINE_DEPTH = 2
_TINY_PIPELINE_DEPTH = 32
_TINY_TASK = 0.005  # seconds
_OUTPUT_KEEP = 1 << 20  # bytes of a task's stdout/stderr that read_output returns
_KEEP_FINISHED_RUNS = 64  # finished runs whose files (stdout/stderr) stay on disk


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class CpuSlots:
    """Counts this machine's CPUs; a worker holds `cores` of them while it lives."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, cores: int) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self._free >= cores)
            self._free -= cores
        try:
            yield
        finally:
            self._free += cores
            async with self._changed:
                self._changed.notify_all()


@dataclass
class _Run:
    """A staged submission and the bookkeeping of its tasks."""

    submission: Submission
    directory: Path
    cores: int
    queue: deque[int]
    dispatched: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    running: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    output: dict[tuple[int, Stream], str] = field(default_factory=dict)
    cleaned: bool = False


class LocalBackend(Backend):
    """Runs tasks as worker processes on this machine, bounded by its CPUs."""

    detaches = False

    def __init__(self, config: ClusterConfig) -> None:
        self._config = config
        self._cpus = available_cpus()
        self._slots = CpuSlots(self._cpus)
        self._tasks = TaskSet("local backend")
        self._transport = LocalTransport()
        self._root = Path(tempfile.gettempdir()) / f"clustrix-{os.getuid()}"
        self._runner: Path | None = None
        self._runs: dict[str, _Run] = {}
        self._where: dict[Job[Any], tuple[_Run, int]] = {}
        self._finished: deque[_Run] = deque()

    # -- submission ---------------------------------------------------------------------
    async def submit(self, submission: Submission) -> None:
        cores = submission.resources.cores
        if cores > self._cpus:
            warnings.warn(
                f"{submission.name} asks for {cores} cores; this machine has {self._cpus}, "
                f"so each task gets {self._cpus}",
                stacklevel=2,
            )
            cores = self._cpus
        runner = await self._ensure_runner()
        directory = self._root / submission.key
        await self._stage(submission, directory)
        run = _Run(submission, directory, cores, deque())
        self._runs[submission.key] = run
        for position, job in enumerate(submission.jobs):
            self._where[job] = (run, position)
            if job.cancel_requested:  # cancelled while it was being staged
                job.cancelled_before_start()
                continue
            job.set_state(JobState.QUEUED)
            run.queue.append(position)
        limit = submission.resources.max_concurrent or len(submission.jobs)
        workers = max(1, min(len(submission.jobs), limit, self._cpus // cores))
        for number in range(workers):
            self._tasks.spawn(self._worker(run, runner), name=f"{submission.key}-w{number}")

    async def _ensure_runner(self) -> Path:
        if self._runner is None:
            source = Path(_runner.__file__).read_bytes()
            digest = hashlib.sha256(source).hexdigest()[:16]
            await self._transport.mkdir(str(self._root))
            path = self._root / f"runner-{digest}.py"
            if not path.exists():
                await self._transport.write_file(str(path), source)
            self._runner = path
        return self._runner

    async def _stage(self, submission: Submission, directory: Path) -> None:
        payload = submission.payload
        await self._transport.mkdir(str(directory))
        await self._transport.mkdir(str(directory / "tasks"))
        await self._transport.write_file(str(directory / "function.pkl"), payload.function)
        await self._transport.write_file(str(directory / "args.bin"), payload.args_blob())
        spec = payload.spec_json(1, time_limit=submission.resources.time)
        await self._transport.write_file(str(directory / "spec.json"), spec)

    # -- workers ------------------------------------------------------------------------
    async def _worker(self, run: _Run, runner: Path) -> None:
        while run.queue:
            async with self._slots.hold(run.cores):
                if not run.queue:
                    break
                log_fd = await asyncio.to_thread(_open_append, run.directory / "worker.err")
                try:
                    process = await asyncio.create_subprocess_exec(
                        sys.executable,
                        str(runner),
                        "serve",
                        str(run.directory),
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=log_fd,
                        start_new_session=True,  # its own process group, killed as one
                    )
                finally:
                    os.close(log_fd)
                try:
                    await self._serve(run, process)
                finally:
                    await _stop(process)
        self._maybe_cleanup(run)

    async def _serve(self, run: _Run, process: asyncio.subprocess.Process) -> None:
        """Feed tasks to one worker, keeping the next one queued in its pipe."""
        assert process.stdin is not None
        assert process.stdout is not None
        jobs = run.submission.jobs
        in_flight: deque[int] = deque()
        loop = asyncio.get_running_loop()
        depth, started = _PIPELINE_DEPTH, 0.0
        while True:
            while len(in_flight) < depth and run.queue:
                position = run.queue.popleft()
                if jobs[position].done():
                    continue
                in_flight.append(position)
                run.dispatched[position] = process
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    process.stdin.write(b"%d\n" % position)
            if not in_flight:
                return
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await process.stdin.drain()
            kind, _, rest = (await process.stdout.readline()).decode().partition(" ")
            if not kind:  # the worker died: settle its running task, requeue the rest
                await self._settle_dead_worker(run, in_flight, process)
                return
            fields = rest.split()
            position = int(fields[0])
            job = jobs[position]
            if kind == "start":
                started = loop.time()
                job.set_state(JobState.RUNNING, job_id=f"local:{process.pid}")
                run.running[position] = process
                if job.cancel_requested:
                    _kill(process)
                continue
            in_flight.remove(position)
            run.dispatched.pop(position, None)
            run.running.pop(position, None)
            if kind == "skip":
                job.cancelled_before_start()
                continue
            depth = _TINY_PIPELINE_DEPTH if loop.time() - started < _TINY_TASK else _PIPELINE_DEPTH
            try:
                data = await process.stdout.readexactly(int(fields[1]))
            except asyncio.IncompleteReadError:  # died while answering: no usable result
                await self._settle_dead_worker(run, deque([position]), process)
                return
            try:
                job.set_result(decode_result(data, job_id=job.job_id))
            except BaseException as error:
                job.set_exception(error)

    async def _settle_dead_worker(
        self, run: _Run, in_flight: deque[int], process: asyncio.subprocess.Process
    ) -> None:
        code = await process.wait()
        started = [p for p in in_flight if p in run.running]
        for position in reversed(in_flight):  # never started: back to the queue's front
            run.dispatched.pop(position, None)
            if position not in run.running:
                run.queue.appendleft(position)
        worker_err = await asyncio.to_thread(_tail, run.directory / "worker.err")
        if not started:
            # The worker died before it could start a task (e.g. the function does
            # not unpickle here): every task would die the same way.
            while run.queue:
                run.submission.jobs[run.queue.popleft()].fail(
                    JobState.FAILED,
                    f"the worker process could not start (exit {code})",
                    exit_code=code,
                    stderr_tail=worker_err,
                )
            return
        for position in started:
            run.running.pop(position, None)
            scratch = run.directory / "tasks" / f".running-{process.pid}"
            await asyncio.to_thread(_keep_scratch, scratch, run.directory / "tasks" / str(position))
            await self._settle_dead_task(run, position, code, worker_err)

    async def _settle_dead_task(self, run: _Run, position: int, code: int, worker_err: str) -> None:
        job = run.submission.jobs[position]
        base = run.directory / "tasks" / str(position)
        _, out, err = await asyncio.to_thread(_read_task_files, base, False)
        run.output[(position, "stdout")], run.output[(position, "stderr")] = out, err
        tail = (err + worker_err)[-4000:]
        if await asyncio.to_thread(base.with_suffix(".timeout").exists):
            limit = run.submission.resources.time or 0
            job.fail(JobState.TIMEOUT, f"exceeded its time limit of {format_time(limit)}")
        elif code < 0:
            name = signal.Signals(-code).name
            job.fail(JobState.FAILED, f"killed by {name}", exit_code=128 - code, stderr_tail=tail)
        else:
            job.fail(
                JobState.FAILED, f"its process exited {code}", exit_code=code, stderr_tail=tail
            )

    def _maybe_cleanup(self, run: _Run) -> None:
        """Once a run is over, keep its files (stdout/stderr stay readable) for a while.

        The most recent finished runs stay on disk until the client closes; older ones
        are removed (with `cleanup_remote_files`), so a long-lived service does not fill
        the temporary directory.
        """
        if run.cleaned or run.queue or run.dispatched:
            return
        if not all(job.done() for job in run.submission.jobs):
            return
        run.cleaned = True
        self._finished.append(run)
        while len(self._finished) > _KEEP_FINISHED_RUNS and not self._tasks.closed:
            old = self._finished.popleft()
            for job in old.submission.jobs:
                self._where.pop(job, None)
            self._runs.pop(old.submission.key, None)
            if old.submission.config.cleanup_remote_files:
                self._tasks.spawn(self._transport.remove_tree(str(old.directory)))

    # -- cancel, output, close -------------------------------------------------------------
    async def cancel(self, jobs: Sequence[Job[Any]]) -> None:
        for job in jobs:
            where = self._where.get(job)
            if where is None or job.done():
                continue
            run, position = where
            job.mark_cancel_requested()
            if position in run.queue:
                run.queue.remove(position)
                job.cancelled_before_start()
            elif position in run.running:
                _kill(run.running[position])
            elif position in run.dispatched:  # sent to a worker, not started: skip it
                marker = run.directory / "tasks" / f"{position}.cancel"
                await asyncio.to_thread(marker.write_bytes, b"")
        await asyncio.gather(*(job._wait() for job in jobs), return_exceptions=True)

    async def read_output(self, job: Job[Any], stream: Stream) -> str:
        where = self._where.get(job)
        if where is None:
            return ""
        run, position = where
        if (position, stream) in run.output:
            return run.output[(position, stream)]
        suffix = ".out" if stream == "stdout" else ".err"
        path = run.directory / "tasks" / f"{position}{suffix}"
        process = run.running.get(position)
        if process is not None:  # still running: it writes to its worker's scratch file
            path = run.directory / "tasks" / f".running-{process.pid}{suffix}"
        return await asyncio.to_thread(_tail, path, _OUTPUT_KEEP)

    async def aclose(self, *, cancel_running: bool) -> None:
        pending = [job for job in self._where if not job.done()]
        for job in pending:
            job.mark_cancel_requested()
        await self._tasks.aclose()  # kills every worker process
        for job in pending:
            job.fail(JobState.CANCELLED, "the client was closed before the task ended")
        for run in list(self._runs.values()):
            if run.submission.config.cleanup_remote_files:
                await self._transport.remove_tree(str(run.directory))
        self._runs.clear()


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """End a worker: close its stdin (it exits), or kill its group if cancelled."""
    try:
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        if process.returncode is None:
            await asyncio.wait_for(process.wait(), 5)
    except BaseException:
        _kill(process)
        await _reap(process)
        raise
    finally:
        if process.returncode is None:
            _kill(process)


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Wait for a killed process even if cancelled again meanwhile (cleanup must end)."""
    waiter = asyncio.ensure_future(process.wait())
    cancelled = False
    while not waiter.done():
        try:
            await asyncio.shield(waiter)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def _tail(path: Path, limit: int = 4000) -> str:
    return file_tail(str(path), limit)


def _read_task_files(base: Path, with_result: bool = True) -> tuple[bytes, str, str]:
    data = base.with_suffix(".result").read_bytes() if with_result else b""
    return (
        data,
        _tail(base.with_suffix(".out"), _OUTPUT_KEEP),
        _tail(base.with_suffix(".err"), _OUTPUT_KEEP),
    )


def _keep_scratch(scratch: Path, base: Path) -> None:
    """A task died mid-way: what it printed so far becomes its own output."""
    for suffix in (".out", ".err"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{scratch}{suffix}", f"{base}{suffix}")
