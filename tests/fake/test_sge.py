"""The batch path against the fake Grid Engine (tests/fakesched): no lab, no root."""

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
from .conftest import FakeFactory, bookkeeping_done, config_for, group_alive, overlap, until
from .tasks import Boom, exit_hard, explode, nap, report, square

ENV = ("JOB_ID", "SGE_TASK_ID", "CX_FAKE")


@pytest.fixture
def sge(fake_factory: FakeFactory) -> FakeScheduler:
    return fake_factory("sge")


async def test_a_job_and_a_throttled_array(sge: FakeScheduler, remote_root: Path) -> None:
    sge.set(qstat_fail=2)  # the first polls fail: the poller carries on
    config = config_for("sge", remote_root, environment_variables={"CX_FAKE": "yes"})
    async with Client(config) as client:
        single = client.submit(report, 9, *ENV)
        sweep = client.options(cores=2).map(
            report, range(4), *([name] * 4 for name in ENV), max_concurrent=2, progress=False
        )
        alone, seen = await asyncio.gather(single, sweep)
        assert await sweep[2].stdout() == "stdout of 2\n"
    await bookkeeping_done(sge)
    by_name = {job["name"]: job for job in sge.jobs()}
    first, second = by_name[single.key], by_name[sweep.key]
    assert single.job_id == first["master"]
    assert alone["env"] == {"JOB_ID": first["master"], "SGE_TASK_ID": "undefined", "CX_FAKE": "yes"}
    assert alone["modes"] == (0o700, 0o700, 0o700)
    # task ids start at 1 on Grid Engine; clustrix's elements at 0
    assert [job.job_id for job in sweep] == [f"{second['master']}.{i}" for i in range(1, 5)]
    assert [s["env"]["SGE_TASK_ID"] for s in seen] == ["1", "2", "3", "4"]
    assert second["throttle"] == 2 and second["slots"] == 2  # -tc 2, -pe smp 2
    assert overlap([(t["start"], t["end"]) for t in second["tasks"].values()]) <= 2
    assert [call[1] for call in sge.calls("qsub")] == ["-terse", "-terse"]
    assert sge.knob("qstat_fail") is None


async def test_sweeps_above_max_array_size_are_split(sge: FakeScheduler, remote_root: Path) -> None:
    async with Client(config_for("sge", remote_root, max_array_size=3)) as client:
        sweep = client.map(square, range(7), progress=False)
        assert await sweep == [x * x for x in range(7)]
    assert [len(job["tasks"]) for job in sge.jobs()] == [3, 3, 1]
    third = sge.jobs()[2]["master"]
    assert sweep[6].job_id == third  # a part of one element is a plain job


async def test_failures_are_read_from_qacct(sge: FakeScheduler, remote_root: Path) -> None:
    sge.set(fail={"after": 0.2, "state": "OUT_OF_MEMORY", "match": "h_vmem"})
    async with Client(config_for("sge", remote_root)) as client:
        oom = client.options(memory="1GB").submit(nap, 30)
        hard = client.submit(exit_hard, 3)
        boom = client.submit(explode, 2)
        slow = client.options(time="00:00:02").submit(nap, 30)
        outcomes = await asyncio.gather(oom, hard, boom, slow, return_exceptions=True)
    assert [type(o) for o in outcomes] == [
        JobOutOfMemoryError,
        JobFailedError,
        Boom,
        JobTimeoutError,
    ], outcomes
    assert outcomes[1].exit_code == 3
    assert outcomes[3].state is JobState.TIMEOUT
    assert sge.calls("qacct")


async def test_cancel_a_running_job_a_held_one_and_a_sweep(
    sge: FakeScheduler, remote_root: Path
) -> None:
    async with Client(config_for("sge", remote_root)) as client:
        running = client.submit(nap, 60)
        held = client.options(extra={"h": None}).submit(square, 1)
        sweep = client.map(nap, [60, 60], progress=False)
        await until(lambda: running.state is JobState.RUNNING)
        await until(lambda: all(job.state is JobState.RUNNING for job in sweep))
        assert held.state is JobState.QUEUED and held.reason == "held"
        await asyncio.gather(running.cancel(), held.cancel(), sweep.cancel())
        outcomes = await asyncio.gather(running, held, *sweep, return_exceptions=True)
    assert all(type(o) is JobCancelledError for o in outcomes), outcomes
    by_name = {job["name"]: job for job in sge.jobs()}
    deleted = sorted(call[1] for call in sge.calls("qdel"))
    assert deleted == sorted([running.job_id, held.job_id, by_name[sweep.key]["master"]])
    for job in sge.jobs():
        for task in job["tasks"].values():
            assert task["state"] == "CANCELLED"
            assert task["pid"] is None or not group_alive(task["pid"])


async def test_a_refused_submission_leaves_nothing_behind(
    sge: FakeScheduler, remote_root: Path
) -> None:
    async with Client(config_for("sge", remote_root)) as client:
        job = client.options(queue="nosuch").submit(square, 1)
        with pytest.raises(SubmissionError, match='unknown queue "nosuch"') as info:
            await job
    assert info.value.argv[0] == "qsub"
    assert not (remote_root / "runs" / job.key).exists()
    assert sge.jobs() == []
