"""The `ssh` backend and the SSH transport against the lab's real OpenSSH sshd."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from clustrix import (
    Client,
    ClusterConfig,
    EnvironmentMismatchError,
    JobCancelledError,
    JobFailedError,
    JobState,
    JobTimeoutError,
)
from clustrix.transport.ssh import SSHTransport

from .conftest import LoginCounter, as_lab_user, ssh_config


def square(x: int) -> int:
    return x * x


def slow_square(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x * x


async def test_single_call_and_sweep_in_one_login(
    lab_ssh: ClusterConfig, logins: LoginCounter, lab: dict[str, Any]
) -> None:
    async with Client(lab_ssh) as client:
        job = client.submit(square, 12)
        assert await job == 144
        assert job.job_id is not None and job.job_id.startswith(f"{lab['host']}:")
        sweep = client.map(square, range(100), progress=False)
        assert await sweep == [x * x for x in range(100)]
        assert all(j.state is JobState.COMPLETED for j in sweep)
        transport = next(iter(client._transports.values()))
    assert transport.logins == 1
    assert logins.count(lab["user"], transport.local_ports) == 1


async def test_concurrent_first_calls_share_one_connection(
    lab_ssh: ClusterConfig, logins: LoginCounter, lab: dict[str, Any]
) -> None:
    transport = SSHTransport(lab_ssh)
    try:
        results = await asyncio.gather(*(transport.run(["echo", str(i)]) for i in range(10)))
    finally:
        await transport.aclose()
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(10)]
    assert transport.logins == 1
    assert logins.count(lab["user"], transport.local_ports) == 1


async def test_user_exception_stdout_and_stderr(lab_ssh: ClusterConfig) -> None:
    def noisy(x: int) -> None:
        import sys

        print(f"to stdout {x}")
        print(f"to stderr {x}", file=sys.stderr)
        raise LookupError(f"missing {x}")

    async with Client(lab_ssh) as client:
        job = client.submit(noisy, 5)
        with pytest.raises(LookupError, match="missing 5") as info:
            await job
        assert "Remote traceback" in "\n".join(info.value.__notes__)
        assert await job.stdout() == "to stdout 5\n"
        assert "to stderr 5" in await job.stderr()


async def test_remote_directories_are_private(lab: dict[str, Any], remote_dir: str) -> None:
    config = ssh_config(lab, remote_dir, cleanup_remote_files=False)
    async with Client(config) as client:
        job = client.submit(square, 2)
        assert await job == 4
        key = job.key
    root = Path(lab["home"]) / remote_dir.removeprefix("~/")
    run = root / "runs" / key
    for path in (root, root / "runs", root / "cache", run, run / "tasks"):
        assert oct(path.stat().st_mode & 0o777) == oct(0o700), path
    assert all(oct(p.stat().st_mode & 0o077) == oct(0) for p in run.glob("*.pkl"))


async def test_cleanup_removes_the_run_directory(
    lab: dict[str, Any], lab_ssh: ClusterConfig
) -> None:
    async with Client(lab_ssh) as client:
        job = client.submit(square, 3)
        assert await job == 9
        await asyncio.sleep(0)  # the backend removes the run after collecting it
    runs = Path(lab["home"]) / lab_ssh.remote_work_dir.removeprefix("~/") / "runs"
    assert not (runs / job.key).exists()


async def test_a_100_megabyte_argument_round_trips(lab_ssh: ClusterConfig) -> None:
    data = os.urandom(100 * 1024 * 1024)

    def digest(blob: bytes) -> tuple[int, str]:
        import hashlib

        return len(blob), hashlib.sha256(blob).hexdigest()

    async with Client(lab_ssh) as client:
        assert await client.submit(digest, data) == (len(data), hashlib.sha256(data).hexdigest())


async def test_bounded_parallelism_on_the_host(lab_ssh: ClusterConfig) -> None:
    def interval(x: int) -> tuple[float, float]:
        import time

        start = time.time()
        time.sleep(0.3)
        return start, time.time()

    async with Client(lab_ssh) as client:
        spans = await client.map(interval, range(8), max_concurrent=2, chunksize=1, progress=False)
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2


async def test_cancel_kills_the_process_group(lab_ssh: ClusterConfig, tmp_path: Path) -> None:
    def spawn_and_wait(marker: str) -> None:
        import subprocess
        import time

        child = subprocess.Popen(["sleep", "300"])
        with open(marker, "w") as handle:
            handle.write(str(child.pid))
        time.sleep(300)

    marker = f"/tmp/clustrix-cancel-{os.getpid()}-{time.time_ns()}"
    async with Client(lab_ssh) as client:
        job = client.submit(spawn_and_wait, marker)
        for _ in range(300):
            if Path(marker).exists() and Path(marker).read_text():
                break
            await asyncio.sleep(0.05)
        child = int(Path(marker).read_text())
        for _ in range(600):  # the task runs; the client knows at its next poll
            if job.state is JobState.RUNNING:
                break
            await asyncio.sleep(0.05)
        assert job.state is JobState.RUNNING
        await job.cancel()
        assert job.state is JobState.CANCELLED
        with pytest.raises(JobCancelledError):
            await job
    for _ in range(100):
        if not Path(f"/proc/{child}").exists():
            break
        await asyncio.sleep(0.05)
    assert not Path(f"/proc/{child}").exists(), "the task's child survived the cancel"
    Path(marker).unlink()


async def test_cancel_a_sweep_before_its_tasks_start(lab_ssh: ClusterConfig) -> None:
    async with Client(lab_ssh) as client:
        sweep = client.map(
            slow_square, range(6), [5] * 6, max_concurrent=1, chunksize=1, progress=False
        )
        while not any(j.state is JobState.RUNNING for j in sweep):
            await asyncio.sleep(0.05)
        await sweep.cancel()
        results = await asyncio.gather(*sweep, return_exceptions=True)
    assert all(isinstance(r, JobCancelledError) for r in results)


def element_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getppid()  # the element's session leader, whose pid names the element


async def test_each_element_of_a_sweep_has_its_own_job_id(
    lab_ssh: ClusterConfig, lab: dict[str, Any]
) -> None:
    """Before it starts an element is the driver's id with its index; then host:pid."""
    async with Client(lab_ssh) as client:
        sweep = client.map(element_pid, [0.5] * 3, max_concurrent=1, chunksize=1, progress=False)
        while sweep[0].job_id is None:
            await asyncio.sleep(0.01)
        before = [job.job_id for job in sweep]
        driver = str(before[0]).rsplit("_", 1)[0]
        assert before == [f"{driver}_{e}" for e in range(3)]
        host, pid = driver.split(":")
        assert host == lab["host"]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()  # the lab is this machine
        assert b"_runner.py\x00drive\x00" in cmdline  # driver.sh has exec'd the runner
        pids = await sweep
    assert [job.job_id for job in sweep] == [f"{lab['host']}:{p}" for p in pids]
    assert len(set(pids)) == 3
    async with Client(lab_ssh) as client:
        single = client.submit(element_pid, 0)
        while single.job_id is None:
            await asyncio.sleep(0.01)
        assert "_" not in str(single.job_id)  # one task: the driver's id, no index
        pid = await single
        assert single.job_id == f"{lab['host']}:{pid}"


async def test_task_killed_by_a_signal(lab_ssh: ClusterConfig) -> None:
    def die() -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)

    async with Client(lab_ssh) as client:
        with pytest.raises(JobFailedError) as info:
            await client.submit(die)
    assert info.value.exit_code == 128 + signal.SIGKILL
    assert "SIGKILL" in str(info.value)


async def test_walltime_is_enforced_by_the_runner(lab_ssh: ClusterConfig) -> None:
    async with Client(lab_ssh) as client:
        started = time.monotonic()
        with pytest.raises(JobTimeoutError):
            await client.options(time="00:00:02").submit(slow_square, 1, 120)
    assert time.monotonic() - started < 60


async def test_hostile_strings_are_carried_literally(lab: dict[str, Any], tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    hostile = f"a b 'q' \"dq\" $(touch {canary}) `touch {canary}`; touch {canary}\nline2 \\ *"
    remote = "~/.clustrix-test hostile 'dir' $(touch " + str(canary) + "); x"
    config = ssh_config(
        lab, remote, environment_variables={"HOSTILE": hostile}, cleanup_remote_files=False
    )

    def read_env() -> str:
        import os

        return os.environ["HOSTILE"]

    try:
        async with Client(config) as client:
            assert await client.submit(read_env) == hostile
            assert await client.submit(len, hostile) == len(hostile)
        assert not canary.exists()
        assert (Path(lab["home"]) / remote.removeprefix("~/") / "runs").is_dir()
    finally:
        as_lab_user(lab, "rm", "-rf", "--", remote.replace("~", lab["home"], 1))


async def test_python_version_mismatch_is_refused_before_submitting(
    lab: dict[str, Any], remote_dir: str
) -> None:
    fake = Path(lab["home"]) / f"fake-python-{os.getpid()}"
    fake.write_text("#!/bin/sh\necho 3.6\n")
    os.chmod(fake, 0o755)
    try:
        config = ssh_config(lab, remote_dir, python_executable=str(fake))
        async with Client(config) as client:
            with pytest.raises(EnvironmentMismatchError, match=r"3\.6.*python_executable"):
                await client.submit(square, 1)
        assert not (Path(lab["home"]) / remote_dir.removeprefix("~/") / "runs").exists() or not any(
            (Path(lab["home"]) / remote_dir.removeprefix("~/") / "runs").iterdir()
        )
    finally:
        fake.unlink()


async def test_clients_preparing_one_area_at_once_do_not_clash(
    lab: dict[str, Any], remote_dir: str
) -> None:
    """Six connections find the support bundle missing at the same moment: each unpacks
    its own copy beside the target and renames it in; the first wins, none breaks."""
    from clustrix.backends.remote.area import RemoteArea

    config = ssh_config(lab, remote_dir)
    transports = [SSHTransport(config) for _ in range(6)]
    try:
        areas = [RemoteArea(t, config) for t in transports]
        await asyncio.gather(*(area.prepare() for area in areas))
    finally:
        for transport in transports:
            await transport.aclose()
    cache = Path(lab["home"]) / remote_dir.removeprefix("~/") / "cache"
    (bundle,) = cache.iterdir()  # one bundle, no leftover temporary copies
    assert (bundle / "READY").exists() and (bundle / "cloudpickle" / "__init__.py").exists()
