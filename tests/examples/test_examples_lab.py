"""The examples that need a cluster, run on the lab's Slurm as a user runs them.

Each writes a `clustrix.yml` for the lab (from /var/lib/clustrix-lab/lab.json) into a
fresh directory and runs the example there as a subprocess; the FastAPI example is
served by a real uvicorn and called with httpx.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import (
    EXAMPLES,
    ROOT,
    cancel_slurm_jobs_below,
    example_env,
    run_example,
    table_rows,
    write_lab_config,
)
from .test_examples import check_summary, write_csvs

pytestmark = pytest.mark.lab


@pytest.fixture
def slurm_dir(lab: dict[str, Any], remote_dir: str, tmp_path: Path) -> Iterator[Path]:
    """A working directory whose clustrix.yml names the lab's Slurm."""
    write_lab_config(tmp_path, lab, remote_dir, "slurm")
    try:
        yield tmp_path
    finally:
        cancel_slurm_jobs_below(remote_dir)


def test_slurm_sweep_runs_as_one_array_job(lab: dict[str, Any], slurm_dir: Path) -> None:
    done = run_example(slurm_dir, str(EXAMPLES / "slurm_sweep.py"))
    assert f"running on: slurm {lab['host']}" in done.stdout
    rows = table_rows(done.stdout)
    assert len(rows) == 9, done.stdout
    jobs = set()
    for *_, where in rows:
        who, _, job = where.partition(" job ")
        assert who.startswith(f"{lab['user']}@"), where  # ran as the lab user...
        assert job.isdigit(), where  # ...inside a Slurm job
        jobs.add(job)
    assert len(jobs) == 9  # one array element each (nine short tasks are not packed)
    assert "{'COMPLETED': 9}" in done.stdout
    assert "9/9" in done.stderr  # the progress bar
    # the same seeds give the same numbers as on the local backend
    local = local_rows(slurm_dir)
    assert [row[:4] for row in rows] == [row[:4] for row in local]


def local_rows(slurm_dir: Path) -> list[list[str]]:
    work = slurm_dir / "local"
    work.mkdir()
    return table_rows(run_example(work, str(EXAMPLES / "slurm_sweep.py")).stdout)


def test_data_workflow_finds_and_processes_the_files_on_slurm(
    lab: dict[str, Any], remote_dir: str, slurm_dir: Path
) -> None:
    # the input files exist on the cluster only: in the lab user's remote_work_dir
    area = Path(lab["home"]) / remote_dir.removeprefix("~/")
    top = write_csvs(area / "input", {"run1.csv": 30, "run2.csv": 7, "run3.csv": 120})
    nested = write_csvs(area / "input" / "2024", {"run4.csv": 3})
    subprocess.run(["chown", "-R", f"{lab['uid']}:{lab['uid']}", str(area)], check=True)
    area.chmod(0o700)
    totals = (top[0] + nested[0], top[1] + nested[1], max(top[2], nested[2]))
    assert not (slurm_dir / "input").exists()  # nothing to find on this side
    # the tasks get "~/<remote_dir>/input/<name>": it names the files only where `~` is
    # the lab user's home, so a task that ran anywhere else would fail to open them

    out = run_example(slurm_dir, str(EXAMPLES / "data_workflow.py")).stdout
    check_summary(out, {"run1.csv": 30, "run2.csv": 7, "run3.csv": 120, "run4.csv": 3}, totals)


# -- the FastAPI service under uvicorn ------------------------------------------------------
class Service:
    def __init__(self, process: subprocess.Popen[bytes], socket: Path, log: Path) -> None:
        self.process, self.socket, self.log = process, socket, log

    def http(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket))
        return httpx.AsyncClient(transport=transport, base_url="http://service", timeout=300)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def service(slurm_dir: Path) -> Iterator[Service]:
    """`uvicorn examples.fastapi_service:app` started in a directory with a clustrix.yml."""
    socket, log = slurm_dir / "service.sock", slurm_dir / "service.log"
    argv = ["-m", "uvicorn", "examples.fastapi_service:app", "--app-dir", str(ROOT)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, *argv, "--uds", str(socket)],
            cwd=slurm_dir,
            env=example_env(slurm_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Service(process, socket, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


async def wait_healthy(service: Service, http: httpx.AsyncClient) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert service.process.poll() is None, service.text()
        try:
            answer = await http.get("/health")
            if answer.status_code == 200:
                body: dict[str, Any] = answer.json()
                return body
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"the service did not start:\n{service.text()}")


@pytest.mark.timeout(600)
async def test_fastapi_service_serves_requests_from_slurm(
    lab: dict[str, Any], service: Service
) -> None:
    async with service.http() as http:
        assert await wait_healthy(service, http) == {"ok": True, "cluster": "slurm"}
        xs = list(range(6))
        calls = [asyncio.create_task(http.get(f"/simulate/{x}")) for x in xs]
        calls += [asyncio.create_task(http.get(f"/simulate-sync/{x}")) for x in (10, 11)]
        health = await http.get("/health", timeout=10)  # the loop serves it meanwhile
        assert health.json()["ok"] is True
        answers = [(await call).json() for call in calls]

    for x, answer in zip([*xs, 10, 11], answers, strict=True):
        assert answer["x"] == x and answer["result"] == x * x, answer
        assert answer["user"] == lab["user"], answer  # ran as the lab user, under Slurm
        assert answer["slurm_job_id"], answer
    assert len({answer["slurm_job_id"] for answer in answers}) == len(answers)

    service.process.send_signal(signal.SIGTERM)
    service.process.wait(60)  # uvicorn re-raises SIGTERM after its graceful shutdown
    log = service.text()
    assert "Application shutdown complete." in log, log
    assert "Traceback" not in log, log
