"""Micro-batching against the fake schedulers: PBS Pro (which the lab cannot run), the
Torque dialects that must not batch, and the batcher's limits and grouping.

The lab tests (tests/remote/test_batching.py) show the same on real Slurm, SGE and ssh.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from clustrix import Client, JobCancelledError, JobState

from ..fakesched.control import FakeScheduler
from .conftest import FakeFactory, config_for, until
from .tasks import square


def wait_for(flag: str, x: int) -> int:
    deadline = time.monotonic() + 60
    while not os.path.exists(flag):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{flag} never appeared")
        time.sleep(0.02)
    return x


def cube(x: int) -> int:
    return x**3


def qsubs(fake: FakeScheduler) -> int:
    return len(fake.calls("qsub"))


async def test_pbs_pro_batches_and_cancels_one_element(
    fake_factory: FakeFactory, remote_root: Path, tmp_path: Path
) -> None:
    pbs = fake_factory("pbs")
    pbs.set(pbs_flavour="pro")
    flag = tmp_path / "go"
    async with Client(config_for("pbs", remote_root), cancel_on_exit=True) as client:
        jobs = [client.submit(wait_for, str(flag), x) for x in range(3)]
        await until(lambda: all(job.state is JobState.RUNNING for job in jobs))
        assert qsubs(pbs) == 1
        [record] = pbs.jobs()
        assert [job.job_id for job in jobs] == [
            record["master"].replace("[]", f"[{i}]") for i in range(3)
        ]
        assert len({job.key for job in jobs}) == 3 and record["name"] not in {j.key for j in jobs}
        await jobs[1].cancel()
        assert pbs.calls("qdel") == [["qdel", jobs[1].job_id]]  # that element only
        with pytest.raises(JobCancelledError):
            await jobs[1]
        assert not jobs[0].done() and not jobs[2].done()
        flag.touch()
        assert await asyncio.gather(jobs[0], jobs[2]) == [0, 2]


@pytest.mark.parametrize("flavour", ["torque", "wrappers"])
async def test_torque_dialects_are_not_batched(
    fake_factory: FakeFactory, remote_root: Path, flavour: str
) -> None:
    """Torque cannot cancel one running element of an array alone (nor can Slurm's
    Torque wrappers address one at all): every call is its own job there."""
    pbs = fake_factory("pbs")
    pbs.set(pbs_flavour=flavour)
    async with Client(config_for("pbs", remote_root)) as client:
        jobs = [client.submit(square, x) for x in range(3)]
        assert await asyncio.gather(*jobs) == [0, 1, 4]
    assert qsubs(pbs) == 3
    assert sorted(job["name"] for job in pbs.jobs()) == sorted(job.key for job in jobs)


async def test_batch_max_and_functions_split_batches(
    fake_factory: FakeFactory, remote_root: Path
) -> None:
    slurm = fake_factory("slurm")
    async with Client(config_for("slurm", remote_root, batch_max=3)) as client:
        squares = [client.submit(square, x) for x in range(7)]
        cubes = [client.submit(cube, x) for x in range(2)]
        assert await asyncio.gather(*squares, *cubes) == [x * x for x in range(7)] + [0, 1]
    assert len(slurm.calls("sbatch")) == 4  # squares 3 + 3 + 1, cubes 2
    sizes = sorted(len(job["tasks"]) for job in slurm.jobs())
    assert sizes == [1, 2, 3, 3]


async def test_a_call_cancelled_while_it_waits_for_its_batch_is_never_submitted(
    fake_factory: FakeFactory, remote_root: Path
) -> None:
    slurm = fake_factory("slurm")
    async with Client(config_for("slurm", remote_root)) as client:
        jobs = [client.submit(square, x) for x in range(4)]
        cancelled = jobs[2].cancel()  # before the batch went
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        await cancelled
    assert outcomes[:2] + outcomes[3:] == [0, 1, 9]
    assert isinstance(outcomes[2], JobCancelledError)
    [record] = slurm.jobs()
    assert len(record["tasks"]) == 3


async def test_a_refused_batch_fails_each_call_with_its_own_error(
    fake_factory: FakeFactory, remote_root: Path
) -> None:
    fake_factory("slurm")
    async with Client(config_for("slurm", remote_root)) as client:
        jobs = [client.options(queue="nosuch").submit(square, x) for x in range(3)]
        errors = await asyncio.gather(*jobs, return_exceptions=True)
    assert all(type(e).__name__ == "SubmissionError" for e in errors)
    assert len({id(e) for e in errors}) == 3


@pytest.mark.parametrize(
    ("kind", "dialect", "batches"),
    [
        ("slurm", "auto", True),
        ("sge", "auto", True),
        ("pbs", "pro", True),
        ("pbs", "auto", True),  # until the probe tells
        ("pbs", "torque", False),
        ("ssh", "auto", True),
        ("local", "auto", False),
    ],
)
def test_which_backends_batch(kind: str, dialect: str, batches: bool, remote_root: Path) -> None:
    config = config_for(kind, remote_root, pbs_dialect=dialect)
    if kind in ("ssh", "local"):
        config = config.model_copy(update={"cluster_type": kind, "cluster_host": "h"})
    assert Client(config)._backend_for(config).may_batch is batches
