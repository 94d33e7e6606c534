"""The batch path against the fake PBS: Torque, PBS Pro and Slurm's Torque wrappers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clustrix import (
    Client,
    JobCancelledError,
    JobFailedError,
    JobOutOfMemoryError,
    JobState,
    JobTimeoutError,
    SubmissionError,
)

from ..fakesched.control import FakeScheduler
from .conftest import FakeFactory, bookkeeping_done, config_for, overlap, until
from .tasks import exit_hard, nap, report, square

ENV = ("PBS_JOBID", "PBS_ARRAYID", "PBS_ARRAY_INDEX")


def pbs_fake(fake_factory: FakeFactory, flavour: str) -> FakeScheduler:
    fake = fake_factory("pbs")
    fake.set(pbs_flavour=flavour)
    return fake


@pytest.mark.parametrize("flavour", ["torque", "pro"])
async def test_a_job_and_a_throttled_array(
    fake_factory: FakeFactory, remote_root: Path, flavour: str
) -> None:
    pbs = pbs_fake(fake_factory, flavour)
    async with Client(config_for("pbs", remote_root)) as client:
        single = client.submit(report, 0, *ENV)
        sweep = client.map(report, range(3), *([n] * 3 for n in ENV), max_concurrent=2)
        alone, seen = await asyncio.gather(single, sweep)
        assert await sweep[1].stdout() == "stdout of 1\n"
    await bookkeeping_done(pbs)
    assert ["qstat", "--version"] in pbs.calls("qstat")  # which PBS is this?
    by_name = {job["name"]: job for job in pbs.jobs()}
    master = by_name[sweep.key]["master"]
    assert single.job_id == by_name[single.key]["master"] == alone["env"]["PBS_JOBID"]
    assert [job.job_id for job in sweep] == [master.replace("[]", f"[{i}]") for i in range(3)]
    assert [s["env"]["PBS_JOBID"] for s in seen] == [job.job_id for job in sweep]
    index = "PBS_ARRAYID" if flavour == "torque" else "PBS_ARRAY_INDEX"
    assert [s["env"][index] for s in seen] == ["0", "1", "2"]
    switch = "-t" if flavour == "torque" else "-J"
    submit = pbs.calls("qsub")
    assert [switch, "0-2%2"] == next(c for c in submit if switch in c)[-3:-1]
    tasks = by_name[sweep.key]["tasks"].values()
    assert overlap([(t["start"], t["end"]) for t in tasks]) <= 2


@pytest.mark.parametrize("flavour", ["torque", "pro"])
async def test_failures_from_exit_status(
    fake_factory: FakeFactory, remote_root: Path, flavour: str
) -> None:
    pbs = pbs_fake(fake_factory, flavour)
    pbs.set(fail={"after": 0.2, "state": "OUT_OF_MEMORY", "match": "mem="})
    async with Client(config_for("pbs", remote_root)) as client:
        hard = client.submit(exit_hard, 3)
        oom = client.options(memory="1GB").submit(nap, 30)
        slow = client.options(time="00:00:02").submit(nap, 30)
        running = client.submit(nap, 60)
        await until(lambda: running.state is JobState.RUNNING)
        await running.cancel()
        outcomes = await asyncio.gather(hard, oom, slow, running, return_exceptions=True)
    assert [type(o) for o in outcomes] == [
        JobFailedError,
        JobOutOfMemoryError,
        JobTimeoutError,
        JobCancelledError,
    ], outcomes
    assert outcomes[0].exit_code == 3
    assert pbs.calls("qdel") == [["qdel", running.job_id]]
    if flavour == "pro":
        assert any("-x" in call for call in pbs.calls("qstat"))


async def test_torque_jobs_gone_from_qstat_are_settled_from_their_files(
    fake_factory: FakeFactory, remote_root: Path
) -> None:
    pbs = pbs_fake(fake_factory, "torque")
    pbs.set(min_job_age=0)  # Torque keeps nothing for users: the exit-code file tells
    async with Client(config_for("pbs", remote_root)) as client:
        ok, hard = client.submit(square, 4), client.submit(exit_hard, 5)
        outcomes = await asyncio.gather(ok, hard, return_exceptions=True)
    assert outcomes[0] == 16
    assert type(outcomes[1]) is JobFailedError and outcomes[1].exit_code == 5


async def test_a_refused_submission_leaves_nothing_behind(
    fake_factory: FakeFactory, remote_root: Path
) -> None:
    pbs = pbs_fake(fake_factory, "torque")
    async with Client(config_for("pbs", remote_root)) as client:
        job = client.options(queue="nosuch").submit(square, 1)
        with pytest.raises(SubmissionError, match="Unknown queue") as info:
            await job
    assert "qsub" in info.value.argv  # run inside the log directory (sh -c cd ...)
    assert not (remote_root / "runs" / job.key).exists()
    assert pbs.jobs() == []


async def test_slurm_torque_wrappers(fake_factory: FakeFactory, remote_root: Path) -> None:
    """Array elements cannot be addressed there: the job name and the files tell."""
    pbs = pbs_fake(fake_factory, "wrappers")
    async with Client(config_for("pbs", remote_root)) as client:
        sweep = client.map(report, range(3), *([n] * 3 for n in ENV), progress=False)
        failing = client.submit(exit_hard, 4)
        slow = client.options(time="00:00:02").submit(nap, 30)
        seen = await sweep
        outcomes = await asyncio.gather(failing, slow, return_exceptions=True)
    assert [s["x"] for s in seen] == [0, 1, 2]
    assert [s["env"]["PBS_ARRAY_INDEX"] for s in seen] == ["0", "1", "2"]
    master = pbs.job_named(sweep.key)[0]["master"]
    assert [job.job_id for job in sweep] == [f"{master}[{i}]" for i in range(3)]
    assert type(outcomes[0]) is JobFailedError and outcomes[0].exit_code == 4
    assert type(outcomes[1]) is JobTimeoutError


async def test_slurm_torque_wrappers_cancel(fake_factory: FakeFactory, remote_root: Path) -> None:
    pbs = pbs_fake(fake_factory, "wrappers")
    async with Client(config_for("pbs", remote_root)) as client:
        whole = client.map(nap, [60, 60], progress=False)
        partly = client.options(max_concurrent=1).map(nap, [60, 0.1, 0.1], progress=False)
        await until(lambda: all(job.job_id for job in [*whole, *partly]))
        await partly[2].cancel()  # still waiting: its marker keeps it from starting
        await whole.cancel()
        outcomes = await asyncio.gather(*whole, partly[2], return_exceptions=True)
        assert all(type(o) is JobCancelledError for o in outcomes), outcomes
        await partly.cancel()
    assert ["qdel", pbs.job_named(whole.key)[0]["master"]] in pbs.calls("qdel")
