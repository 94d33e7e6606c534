"""clustrix in a real async service, on the lab: a uvicorn subprocess serving FastAPI.

The app (tests/service_app.py) opens one Client for the lab's Slurm in its lifespan;
request handlers call a plain ``@cluster`` function. Every call must go to that client:
to Slurm, as the lab user, over one SSH login, without stalling the event loop.
Also: ``@cluster`` functions given to Client.submit/map run on a real cluster.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clustrix import Client, cluster

from .conftest import LoginCounter, ssh_config

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 20


class Service:
    """The uvicorn subprocess and its log."""

    def __init__(self, process: subprocess.Popen[bytes], socket: Path, log: Path) -> None:
        self.process, self.socket, self.log = process, socket, log

    def client(self, timeout: float | None = None) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket))
        return httpx.AsyncClient(transport=transport, base_url="http://service", timeout=timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def service(lab: dict[str, Any], remote_dir: str, tmp_path: Path) -> Iterator[Service]:
    socket, log = tmp_path / "service.sock", tmp_path / "service.log"
    flag = Path(lab["home"]) / remote_dir.removeprefix("~/") / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONASYNCIODEBUG": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.service_app", str(socket), remote_dir, str(flag)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = Service(process, socket, log)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        cancel_jobs_below(remote_dir)


def cancel_jobs_below(remote_dir: str) -> None:
    """scancel what a failed run left in the queue (its jobs would wait for the flag)."""
    name = remote_dir.removeprefix("~/")
    listed = subprocess.run(
        ["squeue", "-h", "-o", "%A %o"], capture_output=True, text=True, check=False
    )
    stale = [line.split()[0] for line in listed.stdout.splitlines() if f"/{name}/" in line]
    if stale:
        subprocess.run(["scancel", *stale], check=False)


async def until(condition: Any, what: str, timeout: float = 120) -> Any:
    """Poll `condition()` (a coroutine function) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await condition()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(900)
async def test_a_lifespan_client_serves_every_request(
    service: Service, lab: dict[str, Any], remote_dir: str, logins: LoginCounter
) -> None:
    flag = Path(lab["home"]) / remote_dir.removeprefix("~/") / "go"
    async with service.client() as http:

        async def healthy() -> bool:
            assert service.process.poll() is None, service.text()
            try:
                return (await http.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await until(healthy, "the service to start", timeout=60)
        calls = [asyncio.create_task(http.get(f"/square/{x}")) for x in range(REQUESTS)]
        calls += [asyncio.create_task(http.get(f"/sync-square/{x}")) for x in (100, 101)]
        try:

            async def running() -> bool:
                states = (await http.get("/status")).json()["states"]
                return len(states) == len(calls) and "RUNNING" in states

            # the lab's queue is shared: allow for other tests' jobs ahead of these
            await until(running, "the jobs to run on Slurm", timeout=600)
            health = await http.get("/health", timeout=10)
            assert health.json() == {"ok": True}
            assert not any(call.done() for call in calls)  # answered while every job waits
            flag.touch()
            answers = [(await call).json() for call in calls]
            stats = (await http.get("/ssh")).json()
        finally:
            for call in calls:
                call.cancel()

    for x, answer in zip([*range(REQUESTS), 100, 101], answers, strict=True):
        assert answer["square"] == x * x
        assert answer["user"] == lab["user"]
        assert answer["slurm_job_id"] and answer["slurm_job_id"] == answer["job_id"]
        assert answer["lifespan_client"] is True
    assert len({a["job_id"] for a in answers}) == len(answers)
    # Concurrent requests are micro-batched (how many batches depends on when they came).
    print(f"{len(calls)} requests, {stats['submissions']} Slurm submissions")
    assert 1 <= stats["submissions"] <= len(calls)
    assert stats["implicit_clients"] == 0  # no default client was made
    [transport] = stats["transports"]
    assert transport["logins"] == 1
    assert logins.count(lab["user"], transport["ports"]) == 1

    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(60) == 0, service.text()
    log = service.text()
    assert "service: asyncio debug=True" in log
    assert "Application shutdown complete." in log
    assert "service: lifespan shutdown ran, client closed" in log
    stalls = [line for line in log.splitlines() if re.search(r"Executing .* took", line)]
    assert stalls == []
    destination = (
        f"where goes to slurm at {lab['user']}@{lab['host']}:{lab['ports']['slurm']} "
        "(client: the most recently opened Client on this event loop)"
    )
    assert log.count(destination) == 1, log


@cluster(cores=1, time="00:05:00")
def cube(x: int) -> int:
    return x**3


async def test_decorated_functions_given_to_a_client_run_on_the_cluster(
    lab: dict[str, Any], remote_dir: str
) -> None:
    async with Client(ssh_config(lab, remote_dir)) as client:
        assert await client.submit(cube, 3) == 27
        assert await client.map(cube, [1, 2, 3], progress=False) == [1, 8, 27]
        view = client.options(cores=2)
        assert await view.submit(cube, 4) == 64
        assert await view.map(cube, [5], progress=False) == [125]
