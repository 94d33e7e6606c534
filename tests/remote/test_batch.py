"""Batch-scheduler behaviour beyond the conformance suite, on the lab's Slurm and SGE."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from clustrix import Client, JobState, SubmissionError

from .conftest import as_lab_user
from .test_conformance import config_for, square


def chatty(x: int) -> int:
    print(f"stdout of {x}")
    print(f"stderr of {x}", file=sys.stderr)
    return x


@pytest.mark.parametrize("kind", ["slurm", "sge"])
async def test_every_tasks_output_is_retrievable(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for(kind, lab, remote_dir)) as client:
        sweep = client.map(chatty, range(3), progress=False)
        assert await sweep == [0, 1, 2]
        for job in sweep:
            assert await job.stdout() == f"stdout of {job.index}\n"
            assert f"stderr of {job.index}" in await job.stderr()


async def test_slurm_array_limit_comes_from_the_scheduler(
    lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for("slurm", lab, remote_dir)) as client:
        assert await client.map(square, range(3), progress=False) == [0, 1, 4]
        backend = next(iter(client._backends.values()))
        assert backend._max_array == lab["slurm"]["max_array_size"]


@pytest.mark.parametrize("kind", ["slurm", "sge"])
async def test_sweeps_larger_than_the_array_limit_are_split(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for(kind, lab, remote_dir, max_array_size=40)) as client:
        sweep = client.map(square, range(100), progress=False)
        assert await sweep == [x * x for x in range(100)]
        backend = next(iter(client._backends.values()))
    separator = "_" if kind == "slurm" else "."
    masters = {str(job.job_id).split(separator)[0] for job in sweep}
    assert len(masters) == 3  # 40 + 40 + 20
    assert backend.poll_commands > 0


async def test_a_job_that_can_never_start_shows_the_reason(
    lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for("slurm", lab, remote_dir)) as client:
        job = client.options(nodes=2).submit(square, 2)  # the lab has one node
        for _ in range(200):
            if job.reason:
                break
            await asyncio.sleep(0.05)
        assert job.state is JobState.QUEUED
        # Slurm 22.05 says PartitionConfig or PartitionNodeLimit for this
        assert job.reason in ("PartitionConfig", "PartitionNodeLimit")
        assert job.reason in repr(job)
        await job.cancel()
        assert job.state is JobState.CANCELLED


async def test_a_bad_walltime_is_refused_by_the_scheduler(
    lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for("slurm", lab, remote_dir)) as client:
        with pytest.raises(SubmissionError, match=r"Invalid (--time|time limit)") as info:
            await client.options(extra={"time": "bogus"}).submit(square, 1)
    assert info.value.argv[0] == "sbatch"
    assert as_lab_user(lab, "ls", "-A", f"{remote_dir}/runs").stdout.split() == []


async def test_cancel_one_task_of_a_sweep_cancels_exactly_its_element(
    lab: dict[str, Any], remote_dir: str
) -> None:
    from .test_conformance import nap

    async with Client(config_for("slurm", lab, remote_dir)) as client:
        sweep = client.map(nap, [0.2, 120, 0.2], progress=False)
        while sweep[1].state is not JobState.RUNNING:
            await asyncio.sleep(0.05)
        await sweep[1].cancel()
        results = await asyncio.gather(*sweep, return_exceptions=True)
    assert results[0] == 0.2 and results[2] == 0.2
    assert sweep[1].state is JobState.CANCELLED
    for _ in range(50):  # sacct lags a moment behind slurmctld
        state = as_lab_user(
            lab, "sacct", "-X", "-n", "-P", "-j", str(sweep[1].job_id), "-o", "State"
        ).stdout.strip()
        if state:
            break
        await asyncio.sleep(0.2)
    assert state.startswith("CANCELLED")


async def test_short_tasks_are_packed_automatically(lab: dict[str, Any], remote_dir: str) -> None:
    """1,000 tasks declared short (time=30 s) do not pay 1,000 job launches."""
    async with Client(config_for("slurm", lab, remote_dir)) as client:
        sweep = client.options(time="00:00:30").map(square, range(1000), progress=False)
        assert await sweep == [x * x for x in range(1000)]
    launches = {job.job_id for job in sweep}
    assert len(launches) == 16  # 63 tasks per element (ceil(1000 / 16)), within 2 h each
