"""`retries=` on the lab's real sshd: an element killed from outside is LOST and retried.

The test kills a running task's element (its job script's process group, as the lab
user, through OpenSSH) the way an administrator or a dying machine would: no exit
status is recorded, so the job ends LOST and is submitted again. Which attempt waits to
be killed is decided by marker files the tasks and the test write, not by timing.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from clustrix import Client, JobLostError, JobState, JobTimeoutError

from .conftest import as_lab_user, ssh_config

pytestmark = pytest.mark.lab


def waits_unless_marked(folder: str, value: int) -> int:
    """Record this attempt's pid in `folder`/started-`value`; the first attempt (or every
    one, if `folder`/always-`value` exists) then waits to be killed (10 minutes at most,
    so a failed test leaves nothing running); the others return at once."""
    folder = os.path.expanduser(folder)
    os.makedirs(folder, exist_ok=True)
    marker = os.path.join(folder, f"started-{value}")
    earlier = os.path.exists(marker)
    with open(marker, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    if earlier and not os.path.exists(os.path.join(folder, f"always-{value}")):
        return value * 10
    end = time.monotonic() + 600
    while time.monotonic() < end:
        time.sleep(0.1)
    return -1


def raises(value: int) -> int:
    raise ValueError(f"task {value} raised")


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _local(lab: dict[str, Any], remote_dir: str) -> Path:
    """The remote folder as this machine sees it (the lab runs here)."""
    return Path(lab["home"]) / remote_dir.removeprefix("~/") / "markers"


def _started(folder: Path, value: int) -> int:
    try:
        return len((folder / f"started-{value}").read_text().splitlines())
    except FileNotFoundError:
        return 0


async def _until(condition: Any, what: str, deadline: float = 240) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


async def _kill_element(lab: dict[str, Any], job: Any, folder: Path, value: int) -> str:
    """Kill the process group of the element running `job`'s current attempt."""
    attempt = job.attempts
    await _until(
        lambda: _started(folder, value) == attempt and job.state is JobState.RUNNING,
        f"attempt {attempt} of task {value} runs",
    )
    job_id = job.job_id
    pid = job_id.rsplit(":", 1)[1]  # the element's job script: its own session
    result = as_lab_user(lab, "kill", "-KILL", "--", f"-{pid}")
    assert result.returncode == 0, result.stderr
    return str(job_id)


async def test_a_killed_element_is_lost_retried_and_its_result_arrives(
    lab: dict[str, Any], remote_dir: str
) -> None:
    folder = _local(lab, remote_dir)
    remote = f"{remote_dir}/markers"
    async with Client(ssh_config(lab, remote_dir, job_poll_interval=1)) as client:
        warm = client.submit(nap, 0)  # the first call sets the remote area up
        assert await warm == 0
        folder.mkdir()
        os.chown(folder, *_owner(lab))
        for value in (1, 3):  # these two have "run before": they return at once
            (folder / f"started-{value}").write_text("0\n")
            os.chown(folder / f"started-{value}", *_owner(lab))
        sweep = client.options(retries=2).map(
            waits_unless_marked, [remote] * 3, [1, 2, 3], progress=False
        )
        killed = await _kill_element(lab, sweep[1], folder, 2)
        await _until(lambda: sweep[1].attempts == 2, "task 2 is retried")
        assert await asyncio.wait_for(sweep, 240) == [10, 20, 30]
    assert [job.attempts for job in sweep] == [1, 2, 1]
    assert sweep[1].job_id != killed and sweep[1].state is JobState.COMPLETED
    assert sweep[1].key == f"{sweep.key}.1"
    assert _started(folder, 2) == 2


async def test_retries_run_out_and_the_error_says_how_many_were_made(
    lab: dict[str, Any], remote_dir: str
) -> None:
    folder = _local(lab, remote_dir)
    remote = f"{remote_dir}/markers"
    async with Client(ssh_config(lab, remote_dir, job_poll_interval=1)) as client:
        assert await client.submit(nap, 0) == 0
        folder.mkdir()
        os.chown(folder, *_owner(lab))
        (folder / "always-4").touch()
        job = client.options(retries=1).submit(waits_unless_marked, remote, 4)
        first = await _kill_element(lab, job, folder, 4)
        await _until(lambda: job.attempts == 2, "the task is retried")
        await _kill_element(lab, job, folder, 4)
        with pytest.raises(JobLostError) as info:
            await asyncio.wait_for(job, 240)
    assert job.attempts == 2 and job.state is JobState.LOST
    message = str(info.value)
    assert "[after 2 attempts (retries=1 used up); " in message
    assert f"attempt 1 (job {first}) ended LOST: its process ended without recording" in message


async def test_an_exception_or_a_timeout_is_not_retried(
    lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(ssh_config(lab, remote_dir, job_poll_interval=1)) as client:
        view = client.options(retries=2)
        failing, slow = view.submit(raises, 5), client.options(retries=2, time="00:00:02")
        late = slow.submit(nap, 120)
        with pytest.raises(ValueError, match="task 5 raised"):
            await failing
        with pytest.raises(JobTimeoutError) as info:
            await asyncio.wait_for(late, 240)
    assert failing.attempts == 1 and late.attempts == 1
    assert "[not retried: TIMEOUT is not in retry_on]" in str(info.value)


def _owner(lab: dict[str, Any]) -> tuple[int, int]:
    """The lab user's uid and gid (the marker folder must be theirs)."""
    stat = Path(lab["home"]).stat()
    return stat.st_uid, stat.st_gid
