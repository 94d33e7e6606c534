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
import sys
import tempfile
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._config import ClusterConfig
from .._job import JobControl
from .._payload import decode_result
from .._settle import Ending, exit_code_of, settle
from .._states import JobState
from .._tasks import TaskSet
from ..oncluster import layout as _layout
from ..oncluster import runner as _runner
from ..oncluster import unpickle as _unpickle
from ..oncluster.agent import keep_scratch
from ..oncluster.agent import tail as file_tail
from ..oncluster.layout import CANCEL, ERR, OUT, TIMEOUT, RunLayout, payload_files
from ..transport.local import LocalTransport
from .base import Backend, Stream, Submission, wait_all
from .processes import CpuSlots, available_cpus, kill, open_append, stop

# Tasks queued at a worker, so it never waits for the client: 2 while tasks are long
# (a queued task waits behind its worker's current one), more once they prove tiny
# (then each round trip through the client would cost more than the task itself).
_PIPELINE_DEPTH = 2
_TINY_PIPELINE_DEPTH = 32
_TINY_TASK = 0.005  # seconds
_OUTPUT_KEEP = 1 << 20  # bytes of a task's stdout/stderr that read_output returns
_KEEP_FINISHED_RUNS = 64  # finished runs whose files (stdout/stderr) stay on disk


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

    @property
    def layout(self) -> RunLayout:
        """The names of the run directory's files."""
        return RunLayout(str(self.directory))


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
        self._where: dict[JobControl[Any], tuple[_Run, int]] = {}
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
        """The runner and the layout it imports, copied once beside each other."""
        if self._runner is None:
            files = {
                "_runner.py": Path(_runner.__file__).read_bytes(),
                "clustrix_layout.py": Path(_layout.__file__).read_bytes(),
                "clustrix_unpickle.py": Path(_unpickle.__file__).read_bytes(),
            }
            digest = hashlib.sha256(b"\0".join(files.values())).hexdigest()[:16]
            folder = self._root / f"runner-{digest}"
            await self._transport.mkdir(str(folder))
            for name, data in files.items():
                if not (folder / name).exists():
                    await self._transport.write_file(str(folder / name), data)
            self._runner = folder / "_runner.py"
        return self._runner

    async def _stage(self, submission: Submission, directory: Path) -> None:
        payload = submission.payload
        layout = RunLayout(str(directory))
        await self._transport.mkdir(layout.tasks)
        spec = payload.spec_json(1, time_limit=submission.resources.time)
        for name, data in payload_files(payload.function, payload.args_blob(), spec).items():
            await self._transport.write_file(layout.path(name), data)

    # -- workers ------------------------------------------------------------------------
    async def _worker(self, run: _Run, runner: Path) -> None:
        while run.queue:
            async with self._slots.hold(run.cores):
                if not run.queue:
                    break
                log_fd = await asyncio.to_thread(open_append, run.layout.worker_log)
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
                    await stop(process)
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
                    kill(process)
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
        worker_err = await asyncio.to_thread(file_tail, run.layout.worker_log)
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
            scratch = run.layout.worker_scratch(process.pid)
            await asyncio.to_thread(keep_scratch, scratch, run.layout.task_base(position))
            await self._settle_dead_task(run, position, code, worker_err)

    async def _settle_dead_task(self, run: _Run, position: int, code: int, worker_err: str) -> None:
        job, layout = run.submission.jobs[position], run.layout
        out, err = await asyncio.to_thread(_outputs, layout, position)
        run.output[(position, "stdout")], run.output[(position, "stderr")] = out, err
        timed_out = await asyncio.to_thread(os.path.exists, layout.task(position, TIMEOUT))
        ending = Ending(
            exit_code=exit_code_of(code),
            timed_out=timed_out,
            time_limit=run.submission.resources.time,
            cancel_requested=job.cancel_requested,
            stderr_tail=(err + worker_err)[-4000:],
        )
        job.end(settle(ending))

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
    async def cancel(self, jobs: Sequence[JobControl[Any]]) -> None:
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
                kill(run.running[position])
            elif position in run.dispatched:  # sent to a worker, not started: skip it
                marker = Path(run.layout.task(position, CANCEL))
                await asyncio.to_thread(marker.write_bytes, b"")
        await wait_all(jobs)

    async def read_output(self, job: JobControl[Any], stream: Stream) -> str:
        if job not in self._where:
            return ""
        run, position = self._where[job]
        kept = run.output.get((position, stream))
        if kept is not None:
            return kept
        suffix = OUT if stream == "stdout" else ERR
        path = run.layout.task(position, suffix)
        # Still running (or sent to a worker whose "start" is not read yet): it writes
        # to its worker's scratch file.
        process = run.running.get(position) or run.dispatched.get(position)
        if process is not None:
            scratch = f"{run.layout.worker_scratch(process.pid)}.{suffix}"
            text = await asyncio.to_thread(file_tail, scratch, _OUTPUT_KEEP)
            if text or not job.done():
                return text
        return await asyncio.to_thread(file_tail, path, _OUTPUT_KEEP)

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


def _outputs(layout: RunLayout, position: int) -> tuple[str, str]:
    """Task `position`'s stdout and stderr (their last `_OUTPUT_KEEP` bytes)."""
    return (
        file_tail(layout.task(position, OUT), _OUTPUT_KEEP),
        file_tail(layout.task(position, ERR), _OUTPUT_KEEP),
    )
