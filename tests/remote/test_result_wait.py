"""Results before the scheduler's bookkeeping, on the real lab: the agent's `watch`
hands a result on as soon as its file exists (backends/remote/waiter.py).

Where a test silences the poller (it then asks neither the scheduler nor the agent), a
result can only come through the waiter; nothing here depends on how fast anything is.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from clustrix import Client

from .conftest import as_lab_user
from .test_conformance import config_for, square

pytestmark = pytest.mark.lab

SLOW_EPILOG = "/etc/slurm/epilog-clustrix-lab.sh"  # tests/lab/conf/slurm-epilog.sh


def wait_for_flag(flag: str) -> str:
    import os

    while not os.path.exists(flag):
        time.sleep(0.05)
    return "released"


def backend_of(client: Client) -> Any:
    return next(iter(client._backends.values()))


def silence_poller(backend: Any) -> None:
    """From now on the poller's ticks do nothing (call before the first one)."""

    async def nothing() -> None:
        return None

    backend._poll_once = nothing


async def remote_waits(lab: dict[str, Any], remote_dir: str) -> list[str]:
    """The lab user's agent `watch` processes of this test's work area (pgrep, as them)."""
    bundle = f"{lab['home']}/{remote_dir.removeprefix('~/')}/cache/"
    # ("[_]": the pattern must not match the command lines that carry it)
    pattern = shlex.quote(f"{bundle}.*[_]agent.py watch")  # (ssh hands it to a shell)
    found = await asyncio.to_thread(as_lab_user, lab, "pgrep", "-u", lab["user"], "-af", pattern)
    return found.stdout.strip().splitlines()


async def until(condition: Any, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not await condition():
        assert time.monotonic() < end, "condition not met before the deadline"
        await asyncio.sleep(0.1)


async def test_a_result_arrives_while_slurm_still_lists_its_job(
    lab: dict[str, Any], remote_dir: str
) -> None:
    """The lab's TaskEpilog keeps a marked job RUNNING for 30 s after its batch script
    ended: its result must not wait for the scheduler to let the job go."""
    config = await asyncio.to_thread(as_lab_user, lab, "scontrol", "show", "config")
    if SLOW_EPILOG not in config.stdout:
        pytest.fail(f"the lab's Slurm has no TaskEpilog {SLOW_EPILOG}: run tests/lab/up.sh")
    marked = {"export": "ALL,CLX_SLOW_EPILOG=clx-slow-epilog"}
    async with Client(config_for("slurm", lab, remote_dir)) as client:
        job = client.options(extra=marked).submit(square, 7)
        backend = backend_of(client)
        silence_poller(backend)
        assert await asyncio.wait_for(job, 120) == 49
        listed = await asyncio.to_thread(
            as_lab_user, lab, "squeue", "-h", "-j", str(job.job_id), "-o", "%T"
        )
        assert listed.stdout.strip() in ("RUNNING", "COMPLETING")
        assert backend.waiter.delivered >= 1
        await asyncio.to_thread(as_lab_user, lab, "scancel", str(job.job_id))  # (its 30 s)


async def test_the_wait_covers_runs_submitted_while_it_waits(
    lab: dict[str, Any], remote_dir: str
) -> None:
    flag = Path(f"/tmp/clx-go-{secrets.token_hex(4)}")  # where the lab user can see it
    async with Client(config_for("ssh", lab, remote_dir), cancel_on_exit=True) as client:
        first = client.submit(wait_for_flag, str(flag))
        backend = backend_of(client)
        silence_poller(backend)

        async def waiting() -> bool:
            return bool(await remote_waits(lab, remote_dir))

        await until(waiting)
        second = client.submit(square, 3)
        assert await asyncio.wait_for(second, 60) == 9
        assert backend.waiter.delivered >= 1 and backend.waiter.last_watch == "inotify"
        assert backend.waiter.calls == 1  # the running agent was told; no new process
        assert len(await remote_waits(lab, remote_dir)) == 1
        assert not first.done()
        flag.touch()
        assert await asyncio.wait_for(first, 60) == "released"
    flag.unlink()


@pytest.mark.parametrize("kind", ["ssh", "slurm"])
async def test_the_stat_loop_serves_where_inotify_cannot(
    kind: str, lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(config_for(kind, lab, remote_dir)) as client:
        job = client.submit(square, 4)
        backend = backend_of(client)
        backend.waiter.watch = "stat"  # as on an NFS home directory
        silence_poller(backend)
        assert await asyncio.wait_for(job, 120) == 16
        assert backend.waiter.delivered >= 1 and backend.waiter.last_watch == "stat"


async def test_closing_the_client_stops_the_remote_wait(
    lab: dict[str, Any], remote_dir: str
) -> None:
    """No agent is left watching on the login node (its own limit: 600 s)."""
    flag = Path(f"/tmp/clx-go-{secrets.token_hex(4)}")
    async with Client(config_for("ssh", lab, remote_dir), cancel_on_exit=True) as client:
        job = client.submit(wait_for_flag, str(flag))

        async def waiting() -> bool:
            return bool(await remote_waits(lab, remote_dir))

        await until(waiting)
    assert job.done()

    async def gone() -> bool:
        return not await remote_waits(lab, remote_dir)

    await until(gone, deadline=30.0)  # well before the agent's own 600 s
