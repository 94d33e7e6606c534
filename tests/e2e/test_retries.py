"""`retries=` on the embedded `local` backend: real worker processes killed from outside.

A local worker killed by a signal cannot be told from a task that killed itself (both
end with the signal's exit status), so the local backend reports it FAILED, never
LOST: it is retried only when ``retry_on`` includes FAILED. Which attempt is running is
decided by files the tasks and the test write, not by timing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from clustrix import (
    Client,
    ClusterConfig,
    JobCancelledError,
    JobFailedError,
    JobState,
    JobTimeoutError,
    cluster,
)


def first_attempt_waits(folder: str, value: int) -> int:
    """The first attempt marks `folder`/started and waits (for a kill); later ones return."""
    marker = os.path.join(folder, f"started-{value}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        end = time.monotonic() + 120  # never outlive a failed test by long
        while time.monotonic() < end:
            time.sleep(0.05)
    return value * 10


def flaky(folder: str, value: int) -> int:
    """Raises on the first attempt, returns on the next."""
    marker = os.path.join(folder, f"flaked-{value}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise ValueError(f"flake {value}")
    return value


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def _until(condition: Any, what: str, deadline: float = 120) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


async def _kill_worker(job: Any, marker: Path) -> str:
    """SIGKILL, from outside, the worker process running `job` once it has started."""
    await _until(lambda: marker.exists() and job.state is JobState.RUNNING, "the task ran")
    job_id = job.job_id
    assert job_id is not None and job_id.startswith("local:")
    os.killpg(int(job_id.split(":")[1]), signal.SIGKILL)
    return str(job_id)


async def test_a_worker_killed_from_outside_is_retried_and_the_result_arrives(
    tmp_path: Path,
) -> None:
    async with Client(cluster_type="local") as client:
        # One task at a time: each kill then meets exactly the task it waits for.
        sweep = client.options(retries=2, retry_on={JobState.FAILED}).map(
            first_attempt_waits, [str(tmp_path)] * 3, [1, 2, 3], progress=False, max_concurrent=1
        )
        killed = [
            await _kill_worker(job, tmp_path / f"started-{i}") for i, job in enumerate(sweep, 1)
        ]
        assert await sweep == [10, 20, 30]
    assert [job.attempts for job in sweep] == [2, 2, 2]
    assert all(job.job_id != first for job, first in zip(sweep, killed, strict=True))
    assert [job.key for job in sweep] == [f"{sweep.key}.{i}" for i in range(3)]


async def test_only_the_failed_task_of_a_sweep_runs_again(tmp_path: Path) -> None:
    async with Client(cluster_type="local") as client:
        sweep = client.options(retries=1, retry_on=["FAILED"]).map(
            first_attempt_waits, [str(tmp_path)] * 3, [4, 5, 6], progress=False
        )
        (tmp_path / "started-4").touch()  # tasks 0 and 2 return at once
        (tmp_path / "started-6").touch()
        await _kill_worker(sweep[1], tmp_path / "started-5")
        assert await sweep == [40, 50, 60]
    assert [job.attempts for job in sweep] == [1, 2, 1]


async def test_by_default_an_outside_kill_on_local_is_not_retried(tmp_path: Path) -> None:
    async with Client(cluster_type="local") as client:
        job = client.options(retries=2).submit(first_attempt_waits, str(tmp_path), 7)
        await _kill_worker(job, tmp_path / "started-7")
        with pytest.raises(JobFailedError) as info:
            await job
    assert job.attempts == 1
    assert "killed by SIGKILL" in str(info.value)
    assert "[not retried: FAILED is not in retry_on]" in str(info.value)


async def test_the_tasks_own_exception_is_retried_only_when_asked(tmp_path: Path) -> None:
    async with Client(cluster_type="local") as client:
        job = client.options(retries=3).submit(flaky, str(tmp_path), 1)
        with pytest.raises(ValueError, match="flake 1") as info:
            await job
        assert job.attempts == 1
        assert "[not retried: FAILED is not in retry_on]" in info.value.__notes__
        again = client.options(retries=3, retry_on={JobState.FAILED}).submit(
            flaky, str(tmp_path), 2
        )
        assert await again == 2
        assert again.attempts == 2


async def test_a_timeout_is_not_retried_unless_asked_and_retries_run_out() -> None:
    async with Client(cluster_type="local") as client:
        job = client.options(retries=2, time="00:00:01").submit(nap, 60)
        with pytest.raises(JobTimeoutError) as info:
            await job
        assert job.attempts == 1
        assert "[not retried: TIMEOUT is not in retry_on]" in str(info.value)
        asked = client.options(retries=1, retry_on={JobState.TIMEOUT}, time="00:00:01")
        job = asked.submit(nap, 60)
        with pytest.raises(JobTimeoutError) as info:
            await job
    assert job.attempts == 2
    assert "[after 2 attempts (retries=1 used up); attempt 1 (job local:" in str(info.value)
    assert "ended TIMEOUT: exceeded its time limit of 00:00:01]" in str(info.value)


async def test_a_cancelled_task_is_not_retried(tmp_path: Path) -> None:
    async with Client(cluster_type="local") as client:
        job = client.options(retries=2, retry_on={JobState.FAILED}).submit(
            first_attempt_waits, str(tmp_path), 8
        )
        await _until(lambda: (tmp_path / "started-8").exists(), "the task ran")
        await job.cancel()
        with pytest.raises(JobCancelledError):
            await job
    assert job.attempts == 1 and job.state is JobState.CANCELLED


async def test_the_decorator_option_applies_and_a_call_can_turn_it_off(tmp_path: Path) -> None:
    retried = cluster(retries=1, retry_on={JobState.FAILED})(flaky)
    job = retried(str(tmp_path), 3)
    assert await job == 3 and job.attempts == 2
    with pytest.raises(ValueError, match="flake 4"):
        await retried.options(retries=0)(str(tmp_path), 4)


async def test_a_retried_task_is_recorded_as_its_next_attempt(tmp_path: Path) -> None:
    """The records follow a retry: the task's one row ends COMPLETED in attempt 2 (the
    retry's submission does not clash with the first one's rows)."""
    from clustrix._records import RecordStore

    flag = tmp_path / "killed-once"
    config = ClusterConfig(cluster_type="local", records_path=tmp_path / "records.db")
    async with Client(config) as client:
        job = client.options(retries=1, retry_on=["FAILED"]).submit(_die_once, str(flag))
        assert await job == "second time"
        assert job.attempts == 2
    record = RecordStore(tmp_path / "records.db").get(job.key)
    assert record is not None
    assert (record.state, record.attempt, record.collected) == (JobState.COMPLETED, 2, True)


def _die_once(flag: str) -> str:
    import os
    import signal

    if not os.path.exists(flag):
        open(flag, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return "second time"
