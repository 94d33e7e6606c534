"""A FastAPI service whose requests run on a cluster: one Client, opened in the lifespan.

Run it from a directory holding a `clustrix.yml` (or with CLUSTRIX_* variables set):

    pip install fastapi uvicorn
    uvicorn examples.fastapi_service:app          # from the repository's root
    curl localhost:8000/simulate/3                # awaited in an async handler
    curl localhost:8000/simulate-sync/3           # .result() in a plain def handler
    curl localhost:8000/health                    # answers while jobs run

The Client opened in the lifespan is open on the event loop that runs every request,
so every `@cluster` call made by a handler goes to it (docs/services.md has the rule):
one SSH connection and one poller for the whole service, however many requests.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from clustrix import Client, ClusterConfig, cluster


@cluster(cores=1, memory="512MB", time="00:05:00")
def simulate(x: int) -> dict[str, Any]:
    """The work a request asks for (here: x squared), and where it ran."""
    return {
        "x": x,
        "result": x * x,
        "host": socket.gethostname(),
        "user": getpass.getuser(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # None outside Slurm
    }


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    config = ClusterConfig()  # ./clustrix.yml, ~/.clustrix/config.yml, CLUSTRIX_* variables
    # cancel_on_exit: jobs still running when the service stops are cancelled (their
    # requests are gone); without it the Client only detaches from them.
    async with Client(config, cancel_on_exit=True) as client:
        app.state.client = client  # optional: handlers can also use it explicitly
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/simulate/{x}")
async def simulate_async(x: int) -> dict[str, Any]:
    """Awaiting the Job: the event loop keeps serving other requests meanwhile."""
    return await simulate(x)


@app.get("/simulate-sync/{x}")
def simulate_sync(x: int) -> dict[str, Any]:
    """A plain def handler: FastAPI runs it in a worker thread, where .result() blocks."""
    return simulate(x).result(timeout=600)


@app.get("/health")
async def health() -> dict[str, Any]:
    """Answers at once, whatever the jobs are doing."""
    client: Client = app.state.client
    return {"ok": True, "cluster": client.config.cluster_type}
