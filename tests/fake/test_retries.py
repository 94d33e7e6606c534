"""`retries=` through the whole batch path, against the fake Slurm (tests/fakesched).

The lab's real Slurm cannot end a job NODE_FAIL or PREEMPTED without draining a node or
enabling preemption, which its shared users may not do, and it never forgets a job; so
those endings come from the fake, which kills a task and reports the state in squeue
and sacct as Slurm prints them (the lab's own LOST case, a killed ssh element, is in
tests/remote/test_retries.py). The fake's ``fail`` and ``vanish`` knobs hit only the
first submission(s), so a retry runs normally.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clustrix import Client, JobLostError, JobOutOfMemoryError, JobState

from ..fakesched.control import FakeScheduler
from .conftest import FakeFactory, config_for, until
from .tasks import nap, square


@pytest.fixture
def slurm(fake_factory: FakeFactory) -> FakeScheduler:
    return fake_factory("slurm")


@pytest.mark.parametrize("min_job_age", [300, 0], ids=["squeue", "sacct"])
async def test_node_failure_and_preemption_resubmit_only_those_tasks(
    slurm: FakeScheduler, remote_root: Path, min_job_age: int
) -> None:
    kinds = {"1": "NODE_FAIL", "2": "PREEMPTED"}
    slurm.set(fail={"after": 0.2, "tasks": kinds}, min_job_age=min_job_age)
    async with Client(config_for("slurm", remote_root)) as client:
        sweep = client.options(retries=1).map(nap, [2, 2, 2, 0.1], progress=False)
        assert await sweep == [2, 2, 2, 0.1]
    assert [job.attempts for job in sweep] == [1, 2, 2, 1]
    first, *retries = slurm.jobs()
    assert first["name"] == sweep.key
    assert {first["tasks"][k]["state"] for k in kinds} == set(kinds.values())
    # the two tasks went out again (together, or one by one), and nothing else did
    assert all(job["name"].startswith(sweep.key[:12]) and "r" in job["name"] for job in retries)
    assert sum(len(job["tasks"]) for job in retries) == 2
    assert [job.key for job in sweep] == [f"{sweep.key}.{i}" for i in range(4)]


async def test_out_of_memory_is_not_retried_unless_asked(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    slurm.set(fail={"after": 0.2, "state": "OUT_OF_MEMORY"})
    async with Client(config_for("slurm", remote_root)) as client:
        job = client.options(retries=2).submit(nap, 30)
        with pytest.raises(JobOutOfMemoryError) as info:
            await job
    assert job.attempts == 1 and len(slurm.calls("sbatch")) == 1
    assert "[not retried: OUT_OF_MEMORY is not in retry_on]" in str(info.value)
    slurm.set(fail={"after": 0.2, "state": "OUT_OF_MEMORY"})
    async with Client(config_for("slurm", remote_root)) as client:
        asked = client.options(retries=1, retry_on={JobState.OUT_OF_MEMORY}).submit(nap, 0.5)
        assert await asked == 0.5
    assert asked.attempts == 2


async def test_a_job_the_scheduler_forgets_is_retried_until_retries_run_out(
    slurm: FakeScheduler, remote_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepted, then unknown to squeue and sacct: LOST after the grace time (the event
    loop's clock is moved forward instead of waiting), then submitted again."""
    slurm.set(vanish=3)
    loop = asyncio.get_running_loop()
    real_time, skew = loop.time, [0.0]
    monkeypatch.setattr(loop, "time", lambda: real_time() + skew[0])

    async def forgotten() -> None:
        """Move the clock past the time accounting may lag, let a whole poll tick ask
        sacct (a third call starts after the second one's tick ended), then past the
        grace time for a job nobody knows (never while `until` waits)."""
        asked = len(slurm.calls("sacct"))
        skew[0] += 20.0
        await until(lambda: len(slurm.calls("sacct")) > asked + 2)
        skew[0] += 100.0

    async with Client(config_for("slurm", remote_root, batch_window=0)) as client:  # a call each
        saved = client.options(retries=1).submit(square, 3)
        lost = client.options(retries=1).submit(square, 4)
        await until(lambda: saved.job_id is not None and lost.job_id is not None)
        first_ids = {saved.job_id, lost.job_id}
        await forgotten()
        await until(lambda: saved.attempts == 2 and lost.attempts == 2)
        await until(lambda: saved.job_id is not None and lost.job_id is not None)
        assert {saved.job_id, lost.job_id}.isdisjoint(first_ids)
        # one of the second attempts vanishes too (vanish=3): that one runs out of retries
        await until(lambda: saved.done() or lost.done())
        await forgotten()
        outcomes = await asyncio.wait_for(asyncio.gather(saved, lost, return_exceptions=True), 20)
    errors = [o for o in outcomes if isinstance(o, JobLostError)]
    assert len(errors) == 1 and sorted(o for o in outcomes if isinstance(o, int)) in ([9], [16])
    assert "[after 2 attempts (retries=1 used up); attempt 1 (job " in str(errors[0])
    assert "ended LOST: the scheduler no longer knows this job]" in str(errors[0])
    assert len(slurm.calls("sbatch")) == 4
