"""End to end on the embedded `local` backend: real worker processes, real runner."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clustrix import (
    Client,
    JobCancelledError,
    JobFailedError,
    JobState,
    JobTimeoutError,
    UsageError,
    cluster,
)
from clustrix.backends.local import available_cpus


@cluster
def square(x: int) -> int:
    return x * x


@cluster
def shout(text: str) -> str:
    print(f"out:{text}")
    print(f"err:{text}", file=sys.stderr)
    return text.upper()


class Odd(ValueError):
    pass


@cluster
def reject_odd(x: int) -> int:
    if x % 2:
        raise Odd(f"{x} is odd")
    return x


@cluster
def wait_for_file(path: str) -> int:
    """Runs until `path` exists (tests remove it to keep the task running)."""
    Path(path + ".started").write_text(str(os.getpid()))
    while not Path(path).exists():
        time.sleep(0.02)
    return os.getpid()


@cluster
def pid_of_worker(_: int) -> int:
    return os.getpid()


async def wait_until(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def test_single_call_and_job_attributes() -> None:
    job = square(7)
    assert job.state in (JobState.PENDING, JobState.QUEUED)
    assert job.job_id is None or job.job_id.startswith("local:")
    assert await job == 49
    assert job.state is JobState.COMPLETED and job.state.final
    assert job.job_id is not None and job.job_id.startswith("local:")
    assert int(job.job_id.split(":")[1]) > 0
    assert "square" in repr(job) and "COMPLETED" in repr(job) and job.key in repr(job)
    assert await job == 49  # awaiting twice gives the same value


async def test_stdout_and_stderr_are_kept_per_task() -> None:
    job = shout("hi")
    assert await job == "HI"
    assert await job.stdout() == "out:hi\n"
    assert await job.stderr() == "err:hi\n"


async def test_sweep_keeps_input_order_and_zips_iterables() -> None:
    sweep = square.map(range(50), progress=False)
    assert len(sweep) == 50
    assert [job.index for job in sweep] == list(range(50))
    assert await sweep == [x * x for x in range(50)]
    assert sweep[3].state is JobState.COMPLETED

    @cluster
    def add(a: int, b: int) -> int:
        return a + b

    assert await add.map([1, 2, 3], [10, 20, 30, 40], progress=False) == [11, 22, 33]
    assert await square.map([], progress=False) == []


async def test_sweep_failure_is_raised_with_its_index_and_others_finish() -> None:
    sweep = reject_odd.map(range(6), progress=False)
    with pytest.raises(Odd) as info:
        await sweep
    notes = "\n".join(info.value.__notes__)
    assert "raised by task 1" in notes or "raised by task 3" in notes or "task 5" in notes
    results = await asyncio.gather(*(job for job in sweep if job.index % 2 == 0))
    assert results == [0, 2, 4]


async def test_sweep_return_exceptions_keeps_every_result() -> None:
    results = await reject_odd.map(range(5), return_exceptions=True, progress=False)
    assert results[0::2] == [0, 2, 4]
    assert all(isinstance(r, Odd) for r in results[1::2])
    assert "raised by task 3" in "\n".join(results[3].__notes__)


async def test_as_completed_yields_every_job_once() -> None:
    sweep = square.map(range(12), progress=False)
    seen = [job.index async for job in sweep.as_completed()]
    assert sorted(seen) == list(range(12))
    assert all(job.done() for job in sweep)


async def test_many_tiny_tasks_reuse_a_few_worker_processes() -> None:
    sweep = pid_of_worker.map(range(300), progress=False)
    pids = set(await sweep)
    assert len(pids) <= available_cpus()
    assert {job.job_id for job in sweep} == {f"local:{pid}" for pid in pids}


async def test_max_concurrent_bounds_the_workers() -> None:
    pids = set(await pid_of_worker.map(range(40), max_concurrent=1, progress=False))
    assert len(pids) == 1


async def test_cancel_running_job_kills_its_process(tmp_path: Path) -> None:
    flag = str(tmp_path / "never")
    job = wait_for_file(flag)
    await wait_until(lambda: Path(flag + ".started").exists())
    pid = int(Path(flag + ".started").read_text())
    # the task runs; the client knows once it read the worker's "start" answer
    await wait_until(lambda: job.state is JobState.RUNNING)
    await job.cancel()
    assert job.state is JobState.CANCELLED
    with pytest.raises(JobCancelledError):
        await job
    await wait_until(lambda: not _alive(pid))


async def test_cancel_sweep_cancels_queued_and_running(tmp_path: Path) -> None:
    flag = str(tmp_path / "never")
    sweep = wait_for_file.map([flag] * 6, max_concurrent=1, progress=False)
    await wait_until(lambda: Path(flag + ".started").exists())
    await sweep.cancel()
    assert all(job.state is JobState.CANCELLED for job in sweep)
    results = await asyncio.gather(*sweep, return_exceptions=True)
    assert all(isinstance(r, JobCancelledError) for r in results)


async def test_cancelling_the_awaiting_task_cancels_the_job(tmp_path: Path) -> None:
    flag = str(tmp_path / "never")
    job = wait_for_file(flag)
    waiter = asyncio.ensure_future(job)
    await wait_until(lambda: Path(flag + ".started").exists())
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await wait_until(job.done)
    assert job.state is JobState.CANCELLED


async def test_walltime_is_enforced_by_the_runner() -> None:
    @cluster(time="00:00:01")
    def sleepy() -> None:
        time.sleep(30)

    started = time.monotonic()
    with pytest.raises(JobTimeoutError) as info:
        await sleepy()
    assert info.value.state is JobState.TIMEOUT
    assert time.monotonic() - started < 20


async def test_task_killed_by_signal_or_exit_raises_job_failed() -> None:
    @cluster
    def die() -> None:
        print("dying now", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(JobFailedError) as info:
        await die()
    assert info.value.state is JobState.FAILED
    assert info.value.exit_code == 128 + signal.SIGKILL
    assert "SIGKILL" in str(info.value) and "dying now" in info.value.stderr_tail

    @cluster
    def leave() -> None:
        sys.exit(3)

    with pytest.raises(JobFailedError) as exited:
        await leave()
    assert exited.value.exit_code == 3
    # the worker survived sys.exit: the next task still runs
    assert await square(3) == 9


async def test_explicit_client_submit_map_options() -> None:
    async with Client(cluster_type="local") as client:
        assert await client.submit(pow, 2, 10) == 1024
        assert await client.map(pow, [2, 3], [3, 2], progress=False) == [8, 9]
        assert await client.options(cores=1).submit(divmod, 7, 2) == (3, 1)
        job = square(4)  # a decorated function inside the block uses this client
        assert job._client is client
        assert await job == 16
    with pytest.raises(UsageError, match="closed"):
        client.submit(pow, 2, 2)


async def test_leaving_a_client_cancels_local_tasks(tmp_path: Path) -> None:
    flag = str(tmp_path / "never")
    async with Client() as client:
        job = client.submit(wait_for_file.__wrapped__, flag)
        await wait_until(lambda: Path(flag + ".started").exists())
    pid = int(Path(flag + ".started").read_text())
    with pytest.raises(JobCancelledError):
        await job
    await wait_until(lambda: not _alive(pid))


async def test_result_on_the_loop_thread_is_a_clear_error() -> None:
    job = square(2)
    with pytest.raises(UsageError, match="await"):
        job.result(timeout=1)
    assert await job == 4


async def test_cores_above_the_machine_are_capped_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="cores"):
        await square.options(cores=available_cpus() + 5)(3)


async def test_serialization_error_is_raised_at_call_time() -> None:
    import threading

    from clustrix import SerializationError

    with pytest.raises(SerializationError, match="argument 0"):
        square(threading.Lock())  # type: ignore[arg-type]


def test_sync_script_uses_result_and_sweeps(tmp_path: Path) -> None:
    """A plain script: no event loop, `result()` blocks; the REPL-style function works."""
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            from clustrix import cluster

            @cluster
            def cube(x):
                return x ** 3

            job = cube(3)
            print("single", job.result(timeout=60))
            sweep = cube.map(range(5), progress=False)
            print("sweep", sweep.result(timeout=60))
            ns = {"__name__": "__main__"}
            exec("def made_in_repl(x):\\n    return -x\\n", ns)
            print("repl", cluster(ns["made_in_repl"])(5).result(timeout=60))
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert "single 27" in out.stdout
    assert "sweep [0, 1, 8, 27, 64]" in out.stdout
    assert "repl -5" in out.stdout
    assert "Task was destroyed" not in out.stderr
    assert "Traceback" not in out.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def test_output_of_a_running_task_is_readable(tmp_path: Path) -> None:
    @cluster
    def talk_then_wait(flag: str) -> str:
        print("halfway there", flush=True)
        Path(flag + ".started").write_text("")
        while not Path(flag).exists():
            time.sleep(0.02)
        return "done"

    flag = str(tmp_path / "go")
    job = talk_then_wait(flag)
    await wait_until(lambda: Path(flag + ".started").exists())
    assert await job.stdout() == "halfway there\n"
    Path(flag).write_text("")
    assert await job == "done"
    assert await job.stdout() == "halfway there\n"
