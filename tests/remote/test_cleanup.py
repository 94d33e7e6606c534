"""A run whose tasks have all ended leaves nothing behind, however the client closes.

Once seen on Slurm: a sweep whose first failure was raised to the caller kept its
``runs/<key>`` directory although every element had ended. The path: elements still
waiting in the queue are settled by ``cancel()`` itself (they never start), and the
run was only cleaned up by the poller's next tick; a client closed right after the
cancellation stopped the poller before that tick came.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from clustrix import Client, JobState

from .conftest import as_lab_user
from .test_conformance import config_for


class Boom(Exception):
    pass


def first_fails(x: int) -> int:
    if x == 0:
        raise Boom("the first task failed")
    time.sleep(120)
    return x


def leftover_runs(lab: dict[str, Any], remote_dir: str) -> list[str]:
    return as_lab_user(lab, "ls", "-A", f"{remote_dir}/runs").stdout.split()


@pytest.mark.parametrize("kind", ["slurm", "ssh"])
async def test_a_sweep_cancelled_after_its_first_failure_is_cleaned_up(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for(kind, lab, remote_dir)) as client:
        sweep = client.map(first_fails, range(4), max_concurrent=1, progress=False)
        with pytest.raises(Boom):
            await sweep
        await sweep.cancel()
        assert all(job.done() for job in sweep)
        assert [job.state for job in sweep][1:] == [JobState.CANCELLED] * 3
    assert leftover_runs(lab, remote_dir) == []


@pytest.mark.parametrize("kind", ["slurm", "sge"])
async def test_a_queued_sweep_cancelled_just_before_closing_is_cleaned_up(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    """Deterministic: every element is held in the queue, so cancel() settles them all."""
    hold = {"hold": None} if kind == "slurm" else {"h": None}  # sbatch --hold / qsub -h
    async with Client(config_for(kind, lab, remote_dir)) as client:
        sweep = client.options(extra=hold).map(first_fails, range(3), progress=False)
        while not all(job.state is JobState.QUEUED for job in sweep):
            await asyncio.sleep(0.05)
        await sweep.cancel()
        assert all(job.state is JobState.CANCELLED for job in sweep)
    assert leftover_runs(lab, remote_dir) == []


@pytest.mark.parametrize("kind", ["slurm", "sge"])
async def test_cancel_on_exit_of_a_queued_sweep_is_cleaned_up(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    hold = {"hold": None} if kind == "slurm" else {"h": None}
    async with Client(config_for(kind, lab, remote_dir), cancel_on_exit=True) as client:
        sweep = client.options(extra=hold).map(first_fails, range(3), progress=False)
        while not all(job.state is JobState.QUEUED for job in sweep):
            await asyncio.sleep(0.05)
    assert all(job.state is JobState.CANCELLED for job in sweep)
    assert leftover_runs(lab, remote_dir) == []
