"""A FastAPI service as the README shows it: one Client opened in the lifespan.

Started by tests/remote/test_service.py as
``python -m tests.service_app SOCKET REMOTE_DIR FLAG`` (uvicorn on a unix socket, the
lab's Slurm from /var/lib/clustrix-lab/lab.json). Every job waits until the file FLAG
exists, so the test decides when the first result can arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from clustrix import Client, ClusterConfig, Job, cluster
from clustrix._selection import _implicit

LAB = json.loads(Path("/var/lib/clustrix-lab/lab.json").read_text())
SETTINGS: dict[str, str] = {}


def lab_slurm(remote_dir: str) -> ClusterConfig:
    return ClusterConfig(
        cluster_type="slurm",
        cluster_host=LAB["host"],
        cluster_port=LAB["ports"]["slurm"],
        username=LAB["user"],
        key_file=LAB["key_file"],
        known_hosts=LAB["known_hosts"],
        remote_work_dir=remote_dir,
        job_poll_interval=1,
    )


@cluster
def where(x: int, flag: str) -> dict[str, Any]:
    """x², with the Slurm job and the user it ran as; waits for `flag` first."""
    deadline = time.monotonic() + 240
    while not os.path.exists(flag):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{flag} never appeared")
        time.sleep(0.05)
    job_id, user = os.environ.get("SLURM_JOB_ID"), getpass.getuser()
    if os.environ.get("SLURM_ARRAY_JOB_ID"):  # a micro-batch: the element, as Slurm names it
        job_id = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return {"square": x * x, "slurm_job_id": job_id, "user": user}


class Preempted(logging.Filter):
    """Tells a stall from a wait for a CPU in asyncio's slow-callback records.

    Debug mode logs "Executing <callback> took N seconds" when a callback held the loop
    for `slow_callback_duration` of wall time. On a loaded machine the kernel may just
    not have run the loop's thread meanwhile; /proc's schedstat counts that wait
    (run_delay). A record whose callback, that wait taken off, ran or blocked for less
    than the threshold is relabelled "preempted"; the rest stay "Executing" lines.
    """

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold
        self.path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        self.samples: deque[tuple[float, float]] = deque(maxlen=4000)
        threading.Thread(target=self._sample, daemon=True).start()

    def _run_delay(self) -> float:
        with open(self.path) as stat:
            return int(stat.read().split()[1]) / 1e9

    def _sample(self) -> None:
        while True:
            self.samples.append((time.monotonic(), self._run_delay()))
            time.sleep(0.005)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        took = re.search(r"^Executing .* took (\d+\.\d+) seconds$", message, re.S)
        if took:
            seconds, now = float(took.group(1)), time.monotonic()
            before = [delay for at, delay in list(self.samples) if at <= now - seconds]
            waited = self._run_delay() - (before[-1] if before else 0.0)
            if seconds - waited < self.threshold:
                record.msg = "preempted, not a stall (%.3f s waiting for a CPU): %s"
                record.args = (waited, message.replace("Executing", "ran", 1))
        return True


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    # uvicorn's runner turns PYTHONASYNCIODEBUG's debug mode off; the test wants it on:
    # every callback that holds the loop for 0.1 s or more is then logged ("Executing")
    loop.set_debug(os.environ.get("PYTHONASYNCIODEBUG") == "1")
    loop.slow_callback_duration = 0.1
    logging.getLogger("asyncio").addFilter(Preempted(loop.slow_callback_duration))
    print(f"service: asyncio debug={loop.get_debug()}", file=sys.stderr, flush=True)
    async with Client(lab_slurm(SETTINGS["remote_dir"])) as client:
        app.state.client = client
        app.state.jobs = []
        yield
    print("service: lifespan shutdown ran, client closed", file=sys.stderr, flush=True)


app = FastAPI(lifespan=lifespan)


def answer(job: Job[dict[str, Any]], value: dict[str, Any]) -> dict[str, Any]:
    return {**value, "job_id": job.job_id, "lifespan_client": job._client is app.state.client}


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.get("/square/{x}")
async def square(x: int) -> dict[str, Any]:
    job = where(x, SETTINGS["flag"])
    app.state.jobs.append(job)
    return answer(job, await job)


@app.get("/sync-square/{x}")
def sync_square(x: int) -> dict[str, Any]:  # FastAPI runs it in a worker thread
    job = where(x, SETTINGS["flag"])
    app.state.jobs.append(job)
    return answer(job, job.result(timeout=300))


@app.get("/status")
async def status() -> dict[str, Any]:
    return {"states": [job.state.value for job in app.state.jobs]}


@app.get("/ssh")
async def ssh() -> dict[str, Any]:
    client: Client = app.state.client
    transports = [
        {"logins": t.logins, "ports": t.local_ports}  # type: ignore[attr-defined]
        for t in client._transports.values()
    ]
    implicit = len(_implicit.get(asyncio.get_running_loop(), {}))
    submissions = sum(getattr(b, "submissions", 0) for b in client._backends.values())
    return {"transports": transports, "implicit_clients": implicit, "submissions": submissions}


if __name__ == "__main__":
    socket_path, SETTINGS["remote_dir"], SETTINGS["flag"] = sys.argv[1:4]
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the
    # handler it found; this one makes the process exit with 0 as a service should.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(app, uds=socket_path, loop="asyncio", lifespan="on", log_level="info")
