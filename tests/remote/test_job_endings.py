"""How a task that ends without a result is reported, on the lab's real schedulers.

Exit codes and signals must reach the caller the same way on every backend, and a
job cancelled with the scheduler's own command (``scancel``/``qdel``) while it waits
in the queue is CANCELLED, not LOST. Tasks wait on a file the test creates, so which
elements run and which wait is decided by the test (an array throttle), not by timing.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from clustrix import Client, JobCancelledError, JobError, JobFailedError, JobState

from .conftest import as_lab_user
from .test_conformance import SCHEDULERS, config_for


def exit_3() -> None:
    os._exit(3)


def kill_myself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def wait_for(path: str, value: int) -> int:
    """Block until `path` exists (the test creates it), then return `value`; give up
    after 10 minutes so a failed test leaves nothing running on the lab."""
    end = time.monotonic() + 600
    while not os.path.exists(os.path.expanduser(path)):
        if time.monotonic() > end:
            raise TimeoutError(path)
        time.sleep(0.1)
    return value


@pytest.mark.parametrize("kind", ["ssh", *SCHEDULERS])
async def test_exit_code_and_signal_reach_the_caller(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for(kind, lab, remote_dir)) as client:
        exited, killed = client.submit(exit_3), client.submit(kill_myself)
        with pytest.raises(JobFailedError) as info:
            await exited
        assert info.value.exit_code == exited.exit_code == 3
        assert "exited 3 without a result" in str(info.value)
        assert "killed" not in str(info.value).split("---")[0]
        with pytest.raises(JobFailedError) as info:
            await killed
        assert info.value.exit_code == killed.exit_code == 137
        assert "killed by SIGKILL (exit 137)" in str(info.value)


def _cancel_outside(kind: str, lab: dict[str, Any], job_id: str) -> None:
    if kind == "slurm":
        result = as_lab_user(lab, "scancel", job_id)
    elif kind == "sge":
        result = as_lab_user(lab, "qdel", job_id)
    else:  # the wrappers cancel a whole array (they cannot address one element)
        master = job_id.split("[")[0]
        argv = ["ssh", "-F", lab["ssh_config"], "clustrix-lab-pbs", "qdel", master]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


async def _wait_until(condition: Any, what: str, deadline: float = 240) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("kind", SCHEDULERS)
async def test_a_pending_element_cancelled_outside_clustrix_is_cancelled(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    """Elements 0-1 run and wait for the go file; the throttle keeps 2-3 queued.
    Slurm and Grid Engine keep no record of a queued element cancelled on its own."""
    go = f"{remote_dir}/go"
    count = 3 if kind == "pbs" else 4
    throttle = 1 if kind == "pbs" else 2
    async with Client(config_for(kind, lab, remote_dir), cancel_on_exit=True) as client:
        sweep = client.map(
            wait_for, [go] * count, range(count), max_concurrent=throttle, progress=False
        )
        last = sweep[count - 1]
        try:
            await _wait_until(
                lambda: sweep[0].state is JobState.RUNNING and last.job_id is not None,
                "the first element runs",
            )
            assert last.state is JobState.QUEUED
            _cancel_outside(kind, lab, str(last.job_id))
            with pytest.raises(JobCancelledError) as info:
                await asyncio.wait_for(last, 120)
        finally:
            assert as_lab_user(lab, "touch", go).returncode == 0
        assert last.state is JobState.CANCELLED
        assert info.value.state is JobState.CANCELLED
        assert info.value.reason == last.reason == "cancelled outside clustrix before it started"
        results = await asyncio.wait_for(asyncio.gather(*sweep, return_exceptions=True), 120)
    if kind == "pbs":  # qdel took the whole array: the queued element too, the running one
        assert isinstance(results[1], JobCancelledError)
        assert "cancelled outside clustrix" in str(results[1])
        assert isinstance(results[0], JobError)
    else:
        assert results[: count - 1] == list(range(count - 1))


@pytest.mark.parametrize("kind", SCHEDULERS)
async def test_a_held_job_cancelled_outside_clustrix_is_cancelled(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    """A single job (no siblings to compare with): Grid Engine's finished-jobs list,
    Slurm's own record and the wrappers' qstat say it ended without ever running."""
    hold = {"hold": None} if kind == "slurm" else {"h": None}
    async with Client(config_for(kind, lab, remote_dir), cancel_on_exit=True) as client:
        job = client.options(extra=hold).submit(wait_for, f"{remote_dir}/never", 1)
        await _wait_until(lambda: job.state is JobState.QUEUED, "the job is queued")
        _cancel_outside(kind, lab, str(job.job_id))
        with pytest.raises(JobCancelledError) as info:
            await asyncio.wait_for(job, 120)
    assert job.state is JobState.CANCELLED
    assert "cancelled outside clustrix" in str(info.value)
