"""Micro-batching on the lab: concurrent single calls become one array submission.

Counted twice: by the backend's own counter of launched runs, and by the scheduler's
ids of the jobs that ran (distinct array masters). No timing is asserted: calls made
in one burst (``asyncio.gather``) always share a batch; calls from threads are given
a long window, and a batch goes as soon as the submission before it is accepted.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from clustrix import Client, ClusterConfig, Job, JobCancelledError, JobState

from .conftest import as_lab_user
from .test_conformance import config_for

pytestmark = pytest.mark.lab
SEPARATOR = {"slurm": "_", "sge": "."}


def square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three is refused")
    return x * x


def wait_for(flag: str, x: int) -> int:
    deadline = time.monotonic() + 240
    while not Path(flag).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{flag} never appeared")
        time.sleep(0.05)
    return x


def submissions(client: Client) -> int:
    return sum(getattr(b, "submissions", 0) for b in client._backends.values())


def masters(kind: str, jobs: list[Job[Any]]) -> set[str]:
    """The scheduler's own jobs behind `jobs` (ssh: none to count)."""
    return {str(job.job_id).split(SEPARATOR[kind])[0] for job in jobs}


async def until(condition: Any, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("kind", ["slurm", "sge", "ssh"])
async def test_20_concurrent_calls_are_one_submission(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for(kind, lab, remote_dir)) as client:
        jobs = [client.submit(square_or_fail, x) for x in range(20)]
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        assert submissions(client) <= 2
    assert [o for i, o in enumerate(outcomes) if i != 3] == [x * x for x in range(20) if x != 3]
    assert isinstance(outcomes[3], ValueError)  # its failure is its own
    assert [job.state for job in jobs].count(JobState.COMPLETED) == 19
    assert len({job.key for job in jobs}) == 20
    assert len({job.job_id for job in jobs}) == 20  # each its own element
    if kind != "ssh":
        assert len(masters(kind, jobs)) <= 2
        assert all(SEPARATOR[kind] in str(job.job_id) for job in jobs)


async def test_200_concurrent_calls_and_accounting(lab: dict[str, Any], remote_dir: str) -> None:
    async with Client(config_for("slurm", lab, remote_dir)) as client:
        jobs = [client.submit(square_or_fail, x) for x in range(200) if x != 3]
        assert await asyncio.gather(*jobs) == [x * x for x in range(200) if x != 3]
        assert submissions(client) <= 5
    found = masters("slurm", jobs)
    assert len(found) <= 5
    listed = as_lab_user(lab, "sacct", "-X", "-n", "-P", "-j", ",".join(found), "-o", "JobID")
    assert {line.split("_")[0] for line in listed.stdout.split()} == found
    assert len({job.key for job in jobs}) == len(jobs) == len({job.job_id for job in jobs})


@pytest.mark.parametrize("kind", ["slurm", "ssh"])
async def test_calls_from_worker_threads_are_batched(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    """The sync path: plain threads call at once (a barrier); what comes while the
    first submission is in flight waits for it (a window long enough never to end
    first) and goes as one batch."""
    config = config_for(kind, lab, remote_dir, batch_window=30)
    async with Client(config) as client:
        barrier = threading.Barrier(20)

        def call(x: int) -> Job[int]:
            barrier.wait()
            return client.submit(square_or_fail, x + 10)

        with ThreadPoolExecutor(20) as pool:
            jobs = await asyncio.gather(
                *(asyncio.wrap_future(pool.submit(call, x)) for x in range(20))
            )
        assert await asyncio.gather(*jobs) == [(x + 10) ** 2 for x in range(20)]
        assert submissions(client) <= 3
    assert len({job.key for job in jobs}) == 20 == len({job.job_id for job in jobs})


@pytest.mark.parametrize("kind", ["slurm", "sge", "ssh"])
async def test_cancelling_one_batched_call_leaves_the_others(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    flag = Path(f"/tmp/clx-batch-{secrets.token_hex(4)}")  # where the lab user can see it
    config = config_for(kind, lab, remote_dir, job_poll_interval=0.5)
    try:
        async with Client(config, cancel_on_exit=True) as client:
            jobs = [client.submit(wait_for, str(flag), x) for x in range(3)]
            await until(lambda: all(j.state is JobState.RUNNING for j in jobs), "all to run")
            assert submissions(client) == 1
            await jobs[1].cancel()
            assert jobs[1].state is JobState.CANCELLED
            with pytest.raises(JobCancelledError):
                await jobs[1]
            if kind == "slurm":  # the scheduler still runs its batch mates
                for job in (jobs[0], jobs[2]):
                    state = as_lab_user(lab, "squeue", "-h", "-j", str(job.job_id), "-o", "%T")
                    assert state.stdout.strip() == "RUNNING"
            assert not jobs[0].done() and not jobs[2].done()
            flag.touch()
            assert await asyncio.wait_for(asyncio.gather(jobs[0], jobs[2]), 120) == [0, 2]
    finally:
        flag.unlink(missing_ok=True)


async def test_batch_window_0_is_one_submission_per_call(
    lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for("slurm", lab, remote_dir, batch_window=0)) as client:
        jobs = [client.submit(square_or_fail, x) for x in (4, 5, 6, 7)]
        assert await asyncio.gather(*jobs) == [16, 25, 36, 49]
        assert submissions(client) == 4
    assert len(masters("slurm", jobs)) == 4
    assert not any("_" in str(job.job_id) for job in jobs)  # plain jobs, no arrays


async def test_calls_with_different_resources_are_not_merged(
    lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for("slurm", lab, remote_dir)) as client:
        small = [client.submit(square_or_fail, x) for x in (4, 5, 6)]
        large = [client.options(cores=2).submit(square_or_fail, x) for x in (7, 8, 9)]
        assert await asyncio.gather(*small, *large) == [16, 25, 36, 49, 64, 81]
        assert submissions(client) == 2
    assert len(masters("slurm", small)) == 1 == len(masters("slurm", large))
    assert masters("slurm", small) != masters("slurm", large)


async def test_slurms_torque_wrappers_are_not_batched(lab: dict[str, Any], remote_dir: str) -> None:
    """Their array elements cannot be cancelled one by one: every call goes alone."""
    config: ClusterConfig = config_for("pbs", lab, remote_dir)
    async with Client(config) as client:
        jobs = [client.submit(square_or_fail, x) for x in (4, 5, 6)]
        assert await asyncio.gather(*jobs) == [16, 25, 36]
        assert submissions(client) == 3
