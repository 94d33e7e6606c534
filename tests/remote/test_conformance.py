"""One conformance suite over every backend: local, ssh, slurm, pbs, sge.

The remote ones run against the lab's real OpenSSH, slurmctld/slurmd, Grid Engine and
Slurm's Torque/PBS wrappers (tests/lab/up.sh; PBS on its own sshd port).
"""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from clustrix import (
    Client,
    ClusterConfig,
    JobCancelledError,
    JobState,
    JobTimeoutError,
    SubmissionError,
)

from .conftest import as_lab_user, ssh_config

BACKENDS = ["local", "ssh", "slurm", "pbs", "sge"]
SCHEDULERS = ["slurm", "pbs", "sge"]


def config_for(kind: str, lab: dict[str, Any], remote_dir: str, **fields: Any) -> ClusterConfig:
    if kind == "local":
        return ClusterConfig(cluster_type="local", **fields)
    fields.setdefault("cluster_port", lab["ports"][kind])
    fields.setdefault("job_poll_interval", 1)
    return ssh_config(lab, remote_dir, cluster_type=kind, **fields)


@pytest.fixture(params=BACKENDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(kind: str, lab: dict[str, Any], remote_dir: str) -> ClusterConfig:
    return config_for(kind, lab, remote_dir)


class Boom(Exception):
    pass


def square(x: int) -> int:
    return x * x


def explode(x: int) -> None:
    raise Boom(f"task {x} exploded")


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def test_single_call(backend: ClusterConfig) -> None:
    async with Client(backend) as client:
        job = client.submit(square, 9)
        assert await job == 81
        assert job.state is JobState.COMPLETED and job.job_id


async def test_exception_type_travels(backend: ClusterConfig) -> None:
    async with Client(backend) as client:
        with pytest.raises(Boom, match="task 4 exploded"):
            await client.submit(explode, 4)


def submissions_recorded(kind: str, lab: dict[str, Any], key: str) -> set[str]:
    """Master job ids the scheduler itself recorded for job name `key`."""
    if kind in ("slurm", "pbs"):  # the lab's PBS is Slurm's wrappers: Slurm keeps records
        out = as_lab_user(lab, "sacct", "-X", "-n", "-P", f"--name={key}", "-o", "JobID").stdout
        return {line.split("_")[0] for line in out.split()}
    out = as_lab_user(lab, "qacct", "-j", key).stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith("jobnumber")}


@pytest.mark.parametrize("kind", SCHEDULERS)
async def test_a_100_task_sweep_is_one_submission(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for(kind, lab, remote_dir)) as client:
        sweep = client.map(square, range(100), progress=False)
        assert await sweep == [x * x for x in range(100)]
        ids = {job.job_id for job in sweep}
    assert len(ids) == 100
    for _ in range(50):  # accounting may lag a moment behind the last task
        recorded = submissions_recorded(kind, lab, sweep.key)
        if recorded:
            break
        await asyncio.sleep(0.2)
    assert len(recorded) == 1, recorded
    master = recorded.pop()
    separator = {"slurm": "_", "pbs": "[", "sge": "."}[kind]
    assert all(str(i).startswith(f"{master}{separator}") for i in ids)


async def test_sweep_of_1000_tiny_tasks_in_chunks(backend: ClusterConfig) -> None:
    async with Client(backend) as client:
        sweep = client.map(square, range(1000), chunksize=100, progress=False)
        assert await sweep == [x * x for x in range(1000)]
    if backend.cluster_type != "local":
        assert len({job.job_id for job in sweep}) == 10  # ten elements of 100 tasks


async def test_cancel_ends_the_job_on_the_cluster(
    backend: ClusterConfig, lab: dict[str, Any]
) -> None:
    async with Client(backend) as client:
        job = client.submit(nap, 300)
        while job.state is not JobState.RUNNING:
            await asyncio.sleep(0.05)
        await job.cancel()
        assert job.state is JobState.CANCELLED
        with pytest.raises(JobCancelledError):
            await job
    if backend.cluster_type == "slurm":
        state = as_lab_user(lab, "squeue", "-h", "-t", "all", "-j", str(job.job_id), "-o", "%T")
        assert state.stdout.strip() in ("", "CANCELLED")
    if backend.cluster_type == "sge":
        assert as_lab_user(lab, "qstat", "-j", str(job.job_id)).returncode != 0
    if backend.cluster_type == "pbs":
        state = as_lab_user(lab, "squeue", "-h", "-t", "all", "-j", str(job.job_id), "-o", "%T")
        assert state.stdout.strip() in ("", "CANCELLED")


async def test_walltime_exceeded_is_timeout_on_every_backend(
    lab: dict[str, Any], remote_dir: str
) -> None:
    """All backends at once, so the test costs the slowest one (Slurm: about a minute)."""

    async def one(kind: str) -> tuple[str, BaseException | None]:
        async with Client(config_for(kind, lab, f"{remote_dir}-{kind}")) as client:
            try:
                await client.options(time="00:01:00").submit(nap, 600)
            except BaseException as error:  # collected and asserted below
                return kind, error
        return kind, None

    outcomes = await asyncio.wait_for(asyncio.gather(*(one(k) for k in BACKENDS)), 240)
    for kind, error in outcomes:
        assert isinstance(error, JobTimeoutError), (kind, error)
        assert error.state is JobState.TIMEOUT


@pytest.mark.parametrize(
    ("kind", "queue", "message"),
    [
        ("slurm", "nosuch", "Invalid partition name specified"),
        ("pbs", "nosuch", "Invalid partition name specified"),
        ("sge", "nosuch", "nosuch"),
    ],
)
async def test_rejected_submission_leaves_nothing_behind(
    kind: str, queue: str, message: str, lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for(kind, lab, remote_dir)) as client:
        job = client.options(partition=queue).submit(square, 1)
        with pytest.raises(SubmissionError, match=message) as info:
            await job
    assert info.value.argv and message in info.value.stderr
    runs = as_lab_user(lab, "ls", "-A", f"{remote_dir}/runs").stdout.split()
    assert runs == []


@pytest.mark.parametrize("kind", SCHEDULERS)
async def test_poller_commands_per_tick_do_not_grow_with_jobs(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    hold = {"hold": None} if kind == "slurm" else {"h": None}  # sbatch --hold / qsub -h
    async with Client(config_for(kind, lab, remote_dir)) as client:
        backend = None

        async def per_tick(expected_live: int) -> float:
            nonlocal backend
            backend = next(iter(client._backends.values()))
            while sum(len(r.live) for r in backend._runs.values()) < expected_live:
                await asyncio.sleep(0.05)
            ticks, commands = backend.poll_ticks, backend.poll_commands
            while backend.poll_ticks < ticks + 5:
                await asyncio.sleep(0.05)
            return (backend.poll_commands - commands) / (backend.poll_ticks - ticks)

        small = client.options(extra=hold).map(square, range(10), progress=False)
        few = await per_tick(10)
        large = client.options(extra=hold).map(square, range(1000), progress=False)
        many = await per_tick(1010)
        await small.cancel()
        await large.cancel()
    # squeue/qstat + (only when some left the queue) sacct/qacct + the agent: at most 3
    assert few <= 3
    assert many <= 3


def print_then_wait(flag: str) -> str:
    import os
    import sys

    print("said before the wait", file=sys.stderr, flush=True)
    while not os.path.exists(flag):
        time.sleep(0.05)
    return "done"


@pytest.mark.parametrize("kind", ["ssh", *SCHEDULERS])
async def test_polls_while_a_task_runs_do_not_disturb_its_output(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    """Status polls that find a running element must leave its task's scratch output
    alone: it counts as alive (the job script's pid in its run directory), so its
    task finishes normally and keeps what it printed (a poll once took the running
    task for dead and moved its output away under it)."""
    flag = Path(f"/tmp/clx-go-{secrets.token_hex(4)}")  # where the lab user can see it
    config = config_for(kind, lab, remote_dir, job_poll_interval=0.2)
    async with Client(config, cancel_on_exit=True) as client:
        job = client.submit(print_then_wait, str(flag))
        while job.state is not JobState.RUNNING:
            await asyncio.sleep(0.05)
        backend = next(iter(client._backends.values()))
        run = next(iter(backend._runs.values()))
        while not list((Path(run.directory) / "tasks").glob(".running-*.err")):
            await asyncio.sleep(0.05)
        ticks = backend.poll_ticks
        while backend.poll_ticks < ticks + 3:
            await asyncio.sleep(0.05)
        assert not job.done()
        flag.touch()
        assert await asyncio.wait_for(job, 60) == "done"
        assert "said before the wait" in await job.stderr()
    flag.unlink()


def test_scheduler_outputs_are_parsed_into_oom() -> None:
    """Out-of-memory cannot happen on the lab (no cgroups): recorded sacct output."""
    from clustrix.schedulers.slurm import SLURM

    statuses = SLURM.parse_accounting("77_3|OUT_OF_MEMORY|0:125\n")
    assert statuses["77_3"].state is JobState.OUT_OF_MEMORY


async def test_slurmctld_restart_mid_sweep_loses_nothing(
    lab: dict[str, Any], remote_dir: str
) -> None:
    """slurmctld goes away and comes back while the sweep runs: every result arrives.

    The restart waits until every element has started (its pid file exists): a restart
    in the middle of a launch burst can leave Slurm believing in elements that never
    started, which only Slurm's own node checks clear, minutes later.
    """
    async with Client(config_for("slurm", lab, remote_dir), cancel_on_exit=True) as client:
        sweep = client.map(nap, [4.0] * 8, progress=False)
        while sweep[0].job_id is None:
            await asyncio.sleep(0.05)
        backend = next(iter(client._backends.values()))
        run = next(iter(backend._runs.values()))
        elements = Path(run.directory) / "elements"
        while len(list(elements.glob("*.pid"))) < 8:
            await asyncio.sleep(0.05)
        restart_slurmctld()
        assert await asyncio.wait_for(sweep, 180) == [4.0] * 8


def restart_slurmctld() -> None:
    with open("/run/slurmctld.pid") as handle:
        pid = int(handle.read().strip())
    subprocess.run(["kill", "-TERM", str(pid)], check=True)
    for _ in range(300):
        if subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0:
            break
        time.sleep(0.1)
    subprocess.run(["/usr/sbin/slurmctld"], check=True)
    for _ in range(300):
        if subprocess.run(["scontrol", "ping"], capture_output=True, text=True).stdout.count("UP"):
            return
        time.sleep(0.1)
    raise AssertionError("slurmctld did not come back")
