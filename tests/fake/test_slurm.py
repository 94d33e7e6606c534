"""The whole batch path against the fake Slurm (tests/fakesched): no lab, no root.

Each test drives clustrix through its public API only (Client, ClusterConfig, Job,
exceptions); the fake records what it was asked (`calls`) and what it ran (`jobs`).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from clustrix import (
    Client,
    JobCancelledError,
    JobFailedError,
    JobLostError,
    JobOutOfMemoryError,
    JobState,
    JobTimeoutError,
    NodeFailureError,
    SubmissionError,
)

from ..fakesched.control import FakeScheduler
from .conftest import FakeFactory, bookkeeping_done, config_for, group_alive, overlap, until
from .tasks import Boom, big, chatty, exit_hard, explode, kill_self, nap, report, square

ENV = ("CX_FAKE", "CX_PRE", "SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID")


@pytest.fixture
def slurm(fake_factory: FakeFactory) -> FakeScheduler:
    return fake_factory("slurm")


async def test_a_single_job_is_staged_privately_with_its_environment_and_cleaned_up(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    config = config_for(
        "slurm",
        remote_root,
        environment_variables={"CX_FAKE": "a b'c $HOME"},
        pre_execution_commands=["export CX_PRE=$((6 * 7))"],
        result_wait=False,  # the result comes with the poller (the one tested here)
    )
    slurm.set(squeue_fail=2)  # the first polls fail: the poller carries on
    async with Client(config) as client:
        job = client.submit(report, 1, *ENV)
        seen = await job
        assert job.state is JobState.COMPLETED
        assert await job.stdout() == "stdout of 1\n"  # kept although the directory went
    (record,) = slurm.jobs()
    assert job.job_id == record["master"] and record["name"] == job.key
    assert Path(seen["cwd"]) == remote_root / "runs" / job.key
    assert seen["modes"] == (0o700, 0o700, 0o700)
    assert not Path(seen["cwd"]).exists()  # cleanup_remote_files=True (the default)
    assert seen["env"] == {
        "CX_FAKE": "a b'c $HOME",
        "CX_PRE": "42",
        "SLURM_JOB_ID": record["master"],
        "SLURM_ARRAY_JOB_ID": None,
        "SLURM_ARRAY_TASK_ID": None,
    }
    assert [call[1] for call in slurm.calls("sbatch")] == ["--parsable"]
    assert slurm.knob("squeue_fail") is None  # both failures were met


async def test_a_sweep_is_one_throttled_array_and_keeps_each_tasks_output(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    async with Client(config_for("slurm", remote_root, cleanup_remote_files=False)) as client:
        sweep = client.map(report, range(5), *([name] * 5 for name in ENV), max_concurrent=2)
        seen = await sweep
        for job in sweep:
            assert await job.stdout() == f"stdout of {job.index}\n"
            assert f"stderr of {job.index}" in await job.stderr()
    await bookkeeping_done(slurm)
    (record,) = slurm.jobs()
    master = record["master"]
    assert len(slurm.calls("sbatch")) == 1
    assert [job.job_id for job in sweep] == [f"{master}_{i}" for i in range(5)]
    assert [s["env"]["SLURM_ARRAY_TASK_ID"] for s in seen] == [str(i) for i in range(5)]
    assert {s["env"]["SLURM_ARRAY_JOB_ID"] for s in seen} == {master}
    assert record["throttle"] == 2
    assert overlap([(t["start"], t["end"]) for t in record["tasks"].values()]) <= 2
    assert (remote_root / "runs" / sweep.key).is_dir()  # cleanup_remote_files=False


async def test_sweeps_above_max_array_size_are_split_into_chunked_parts(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    slurm.set(max_array_size=4)  # the fake refuses larger arrays, as Slurm does
    async with Client(config_for("slurm", remote_root)) as client:
        sweep = client.map(square, range(20), chunksize=2, progress=False)
        assert await sweep == [x * x for x in range(20)]
    assert [len(job["tasks"]) for job in slurm.jobs()] == [4, 4, 2]  # 10 elements of 2
    assert len(slurm.calls("scontrol")) == 1  # MaxArraySize, asked once
    masters = [job["master"] for job in slurm.jobs()]
    assert sweep[0].job_id == sweep[1].job_id == f"{masters[0]}_0"
    assert sweep[19].job_id == f"{masters[2]}_1"


async def test_results_exceptions_and_large_results(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    async with Client(config_for("slurm", remote_root)) as client:
        boom, large, plain = (
            client.submit(explode, 4),
            client.submit(big, 3 << 20),
            client.submit(chatty, 5),
        )
        with pytest.raises(Boom, match="task 4 exploded"):
            await boom
        assert await large == b"x" * (3 << 20)  # beyond the inline limit: read as a file
        assert await plain == 5
    assert boom.state is JobState.FAILED


async def test_jobs_that_die_fail_with_exit_code_and_message(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    slurm.set(min_job_age=0)  # gone from squeue at once: sacct tells how they ended
    async with Client(config_for("slurm", remote_root)) as client:
        hard = client.submit(exit_hard, 3)
        killed = client.submit(kill_self, signal.SIGKILL)
        conda = client.options(environment="conda:nosuch-env").submit(square, 3)
        errors = await asyncio.gather(hard, killed, conda, return_exceptions=True)
    assert all(type(e) is JobFailedError for e in errors), errors
    assert [e.state for e in errors] == [JobState.FAILED] * 3
    assert [e.exit_code for e in errors[:2]] == [3, 128 + signal.SIGKILL]
    assert "exited 3" in str(errors[0])
    assert "SIGKILL" in str(errors[1])
    assert "cannot activate conda environment nosuch-env" in errors[2].stderr_tail
    assert errors[2].exit_code not in (None, 0)
    assert slurm.calls("sacct")


async def test_exit_codes_of_jobs_still_listed_by_squeue(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    async with Client(config_for("slurm", remote_root)) as client:
        errors = await asyncio.gather(
            client.submit(exit_hard, 3),
            client.submit(kill_self, signal.SIGKILL),
            return_exceptions=True,
        )
    assert [e.exit_code for e in errors] == [3, 128 + signal.SIGKILL]


async def test_the_stderr_of_a_task_that_died_is_in_its_error(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    slurm.set(min_job_age=0)
    async with Client(config_for("slurm", remote_root)) as client:
        job = client.submit(exit_hard, 3)
        with pytest.raises(JobFailedError) as info:
            await job
        assert "leaving with 3" in await job.stderr()
    assert "leaving with 3" in info.value.stderr_tail


@pytest.mark.parametrize("min_job_age", [300, 0], ids=["squeue", "sacct"])
async def test_scheduler_failures_raise_their_own_errors(
    slurm: FakeScheduler, remote_root: Path, min_job_age: int
) -> None:
    kinds = {"0": "NODE_FAIL", "1": "OUT_OF_MEMORY", "2": "PREEMPTED"}
    slurm.set(fail={"after": 0.2, "tasks": kinds}, min_job_age=min_job_age)
    async with Client(config_for("slurm", remote_root)) as client:
        sweep = client.map(nap, [30, 30, 30, 0.1], progress=False)
        outcomes = await asyncio.gather(*sweep, return_exceptions=True)
    expected = [NodeFailureError, JobOutOfMemoryError, JobFailedError]
    assert [type(o) for o in outcomes[:3]] == expected, outcomes
    assert [o.state for o in outcomes[:3]] == [JobState[k] for k in kinds.values()]
    assert [job.state for job in sweep[:3]] == [JobState[k] for k in kinds.values()]
    assert [o.job_id for o in outcomes[:3]] == [job.job_id for job in sweep[:3]]
    assert outcomes[3] == 0.1


async def test_walltime_exceeded_is_a_timeout(slurm: FakeScheduler, remote_root: Path) -> None:
    async with Client(config_for("slurm", remote_root)) as client:
        job = client.options(time="00:00:02").submit(nap, 30)
        with pytest.raises(JobTimeoutError, match="time limit of 00:00:02") as info:
            await job
    assert info.value.state is JobState.TIMEOUT
    assert slurm.jobs()[0]["time_limit"] == 2  # --time reached sbatch


async def test_a_job_that_can_never_start_shows_the_reason(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    async with Client(config_for("slurm", remote_root)) as client:
        job = client.options(nodes=2).submit(square, 2)
        await until(lambda: job.reason is not None)
        assert job.state is JobState.QUEUED
        assert job.reason == "PartitionNodeLimit"
        assert "PartitionNodeLimit" in repr(job)
        await job.cancel()
        assert job.state is JobState.CANCELLED
        with pytest.raises(JobCancelledError):
            await job
    assert slurm.calls("scancel") == [["scancel", job.job_id]]
    assert slurm.jobs()[0]["tasks"]["0"]["state"] == "CANCELLED"


async def test_cancel_a_job_a_whole_sweep_and_one_task(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    async with Client(config_for("slurm", remote_root)) as client:
        single = client.submit(nap, 60)
        whole = client.map(nap, [60] * 3, max_concurrent=2, progress=False)
        partly = client.map(nap, [0.2, 60, 0.2], progress=False)
        await until(lambda: single.state is JobState.RUNNING)
        await until(lambda: partly[1].state is JobState.RUNNING)
        await until(lambda: sum(j.state is JobState.RUNNING for j in whole) == 2)
        await asyncio.gather(single.cancel(), whole.cancel(), partly[1].cancel())
        assert single.state is JobState.CANCELLED
        assert all(job.state is JobState.CANCELLED for job in whole)
        with pytest.raises(JobCancelledError):
            await single
        results = await asyncio.gather(*whole, *partly, return_exceptions=True)
    assert all(isinstance(r, JobCancelledError) for r in results[:3])
    assert results[3] == 0.2 and results[5] == 0.2
    assert isinstance(results[4], JobCancelledError)
    cancelled = sorted(call[1] for call in slurm.calls("scancel"))
    masters = {job["name"]: job["master"] for job in slurm.jobs()}
    # a whole array goes by its master id, one task by its own id
    assert cancelled == sorted([single.job_id, masters[whole.key], partly[1].job_id])
    for record in slurm.jobs():
        for task in record["tasks"].values():
            assert not group_alive(task["pid"])
    assert {t["state"] for t in slurm.job_named(whole.key)[0]["tasks"].values()} == {"CANCELLED"}


async def test_cancel_right_after_submitting(slurm: FakeScheduler, remote_root: Path) -> None:
    async with Client(config_for("slurm", remote_root), cancel_on_exit=True) as client:
        job = client.submit(nap, 30)
        await asyncio.wait_for(job.cancel(), 4)
        assert job.state is JobState.CANCELLED


async def test_closing_with_cancel_on_exit_cancels_live_jobs(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    async with Client(config_for("slurm", remote_root), cancel_on_exit=True) as client:
        job = client.submit(nap, 60)
        await until(lambda: job.state is JobState.RUNNING)
    assert job.state is JobState.CANCELLED
    assert slurm.calls("scancel") == [["scancel", job.job_id]]


async def test_closing_without_cancel_on_exit_detaches(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    async with Client(config_for("slurm", remote_root)) as client:
        job = client.submit(nap, 60)
        await until(lambda: job.state is JobState.RUNNING)
    assert slurm.calls("scancel") == []
    assert slurm.jobs()[0]["tasks"]["0"]["state"] == "RUNNING"  # it keeps running


async def test_a_refused_submission_leaves_nothing_behind(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    async with Client(config_for("slurm", remote_root)) as client:
        job = client.options(partition="nosuch").submit(square, 1)
        with pytest.raises(SubmissionError, match="Invalid partition name specified") as info:
            await job
    assert info.value.argv[0] == "sbatch"
    assert "Invalid partition name specified" in info.value.stderr
    assert not (remote_root / "runs" / job.key).exists()
    assert slurm.jobs() == []


async def test_a_refused_second_part_withdraws_the_first(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    slurm.set(max_array_size=2, refuse={"after": 1, "message": "sbatch: error: QOSMaxSubmit"})
    async with Client(config_for("slurm", remote_root)) as client:
        sweep = client.map(nap, [30] * 3, progress=False)
        results = await asyncio.gather(*sweep, return_exceptions=True)
    assert all(isinstance(r, SubmissionError) for r in results), results
    assert "QOSMaxSubmit" in str(results[0])
    (accepted,) = slurm.jobs()
    assert slurm.calls("scancel") == [["scancel", accepted["master"]]]
    assert not (remote_root / "runs" / sweep.key).exists()


async def test_a_job_the_scheduler_forgets_is_lost(
    slurm: FakeScheduler, remote_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Accepted, then unknown to squeue and sacct: LOST once the grace time has passed.

    The backend measures that time on the event loop's clock, which is moved forward
    instead of waiting (about 75 s).
    """
    slurm.set(vanish=1)
    loop = asyncio.get_running_loop()
    real_time, skew = loop.time, [0.0]
    monkeypatch.setattr(loop, "time", lambda: real_time() + skew[0])
    async with Client(config_for("slurm", remote_root)) as client:
        job = client.submit(square, 3)
        await until(lambda: job.job_id is not None)
        asked = len(slurm.calls("sacct"))
        skew[0] = 20.0  # past the time accounting may lag behind a submission
        await until(lambda: len(slurm.calls("sacct")) > asked + 1)
        assert not job.done()
        skew[0] = 100.0  # past the grace time for a job nobody knows
        with pytest.raises(JobLostError) as info:
            await asyncio.wait_for(job, 20)
    assert info.value.state is JobState.LOST
    assert slurm.jobs() == []


async def test_a_submission_whose_answer_is_lost_is_found_by_name(
    slurm: FakeScheduler, remote_root: Path
) -> None:
    slurm.set(lost_answer=1)
    async with Client(config_for("slurm", remote_root)) as client:
        job = client.submit(square, 7)
        assert await asyncio.wait_for(job, 30) == 49
    assert len(slurm.jobs()) == 1


async def test_module_loads_reach_the_job_script(
    slurm: FakeScheduler, remote_root: Path, fake_modules: Path
) -> None:
    config = config_for("slurm", remote_root, module_loads=["python/3.11", "gcc/12"])
    async with Client(config) as client:
        assert await client.submit(square, 3) == 9
    assert fake_modules.read_text().splitlines()[-2:] == ["load python/3.11", "load gcc/12"]


async def test_a_failing_module_load_fails_the_job_with_its_message(
    slurm: FakeScheduler, remote_root: Path, fake_modules: Path
) -> None:
    slurm.set(min_job_age=0)
    config = config_for("slurm", remote_root, module_loads=["nosuch"])
    async with Client(config) as client:
        with pytest.raises(JobFailedError) as info:
            await client.submit(square, 3)
    assert "module load failed: nosuch" in info.value.stderr_tail
    assert "Unable to locate a modulefile for 'nosuch'" in info.value.stderr_tail
    assert info.value.exit_code not in (None, 0)
