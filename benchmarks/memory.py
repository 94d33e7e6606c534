"""Client memory per in-flight job (tracemalloc), on every backend the lab runs.

Local, ssh, SGE and the PBS wrappers: one sweep of N one-task elements that block on a
flag file (so all but the running few stay pending). Slurm: one sweep of N one-task
elements held in the queue by ``--begin=now+1hour`` (passed through `extra`). The
remote ones are polled by the client for a few ticks before the reading.
The figure is the growth of Python's traced memory from just before the sweep to
the moment all N are in flight, divided by N. Afterwards every task is cancelled
(on Slurm, also `scancel` of the array ids over OpenSSH, should the sweep's cancel fail).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from clustrix import Client, ClusterConfig, JobState, Sweep

from ._lab import OpenSSH, lab_config, poll_counters, square
from ._report import Figure, value_at_most

GOAL_KB = 50.0


def wait_for(path: str) -> str:
    """Block until `path` exists (the local tasks' body)."""
    while not os.path.exists(path):
        time.sleep(0.05)
    return path


async def _until(condition: Callable[[], bool], deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError(f"waited {deadline:.0f} s for {what}")
        await asyncio.sleep(0.1)


async def _submitted_and_polled(client: Client, sweep: Sweep[Any]) -> None:
    """Until every job of `sweep` has an id and the client polled three more times."""
    await _until(lambda: all(j.job_id for j in sweep), 600, "the sweep's submission")
    ticks = poll_counters(client)
    if ticks is None:
        await asyncio.sleep(5)
        return
    await _until(
        lambda: (poll_counters(client) or (0, 0))[1] >= ticks[1] + 3, 120, "three poll ticks"
    )


def _per_job_kb(baseline: int, count: int) -> float:
    return (tracemalloc.get_traced_memory()[0] - baseline) / count / 1024


async def local(count: int) -> float:
    """KB per in-flight job on the local backend."""
    flag = os.path.join(tempfile.mkdtemp(prefix="cx-bench-mem-"), "go")
    tracemalloc.start()
    try:
        async with Client(cluster_type="local") as client:
            await client.submit(square, 2)  # the backend and its workers exist from here on
            baseline = tracemalloc.get_traced_memory()[0]
            sweep = client.map(wait_for, [flag] * count, progress=False)
            await _until(
                lambda: any(j.state is JobState.RUNNING for j in sweep),
                120,
                "a local task to start",
            )
            await asyncio.sleep(2)
            kb = _per_job_kb(baseline, count)
            await sweep.cancel()
    finally:
        tracemalloc.stop()
        Path(flag).touch()
    return kb


async def slurm(count: int, session: OpenSSH) -> float:
    """KB per in-flight job on Slurm (elements held pending by a begin time)."""
    tracemalloc.start()
    sweep: Sweep[int] | None = None
    try:
        config = lab_config("slurm", "~/.clustrix-bench")
        async with Client(config, cancel_on_exit=True) as client:
            await client.submit(square, 2)  # logged in, runner cached
            baseline = tracemalloc.get_traced_memory()[0]
            held = client.options(extra={"begin": "now+1hour"})
            sweep = held.map(square, range(count), chunksize=1, progress=False)
            await _submitted_and_polled(client, sweep)
            kb = _per_job_kb(baseline, count)
            await sweep.cancel()
    finally:
        tracemalloc.stop()
        if sweep is not None:
            ids = sorted({j.job_id.split("_", 1)[0] for j in sweep if j.job_id})
            if ids:
                await session.run(f"scancel {shlex.join(ids)} 2>/dev/null; true")
    return kb


async def blocked(kind: str, count: int, session: OpenSSH) -> float:
    """KB per in-flight job on `kind` (elements blocked on a flag file, or queued)."""
    flag = f"/tmp/cx-bench-mem-{os.getpid()}-{kind}"  # (the lab user sees /tmp too)
    tracemalloc.start()
    sweep: Sweep[str] | None = None
    try:
        config = lab_config(kind, "~/.clustrix-bench")
        async with Client(config, cancel_on_exit=True) as client:
            await client.submit(square, 2)  # logged in, runner cached
            baseline = tracemalloc.get_traced_memory()[0]
            sweep = client.map(wait_for, [flag] * count, chunksize=1, progress=False)
            await _submitted_and_polled(client, sweep)
            kb = _per_job_kb(baseline, count)
            await sweep.cancel()
    finally:
        tracemalloc.stop()
        await session.run(f"touch {shlex.quote(flag)}; sleep 2; rm -f {shlex.quote(flag)}")
        if sweep is not None and kind in ("sge", "pbs"):
            ids = sorted({j.job_id.split("[", 1)[0] for j in sweep if j.job_id})
            if ids:
                await session.run(f"qdel {shlex.join(ids)} >/dev/null 2>&1; true")
    return kb


async def kubernetes(count: int) -> float:
    """KB per in-flight job on the kubernetes backend, against the tests' fake API
    server and node (in a process of its own: `benchmarks.k8s_fake`)."""
    root = Path(tempfile.mkdtemp(prefix="cx-bench-k8s-"))
    flag = str(root / "go")
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.k8s_fake",
        str(root),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert server.stdin is not None and server.stdout is not None
    tracemalloc.start()
    try:
        kubeconfig = (await asyncio.wait_for(server.stdout.readline(), 60)).decode().strip()
        config = ClusterConfig(cluster_type="kubernetes", kubeconfig=kubeconfig)
        async with Client(config, cancel_on_exit=True) as client:
            await client.submit(square, 2)
            baseline = tracemalloc.get_traced_memory()[0]
            sweep = client.map(wait_for, [flag] * count, progress=False)  # (packed: the fake
            # node is no real cluster; thousands of pods would measure the fake)
            await _until(
                lambda: any(j.state is JobState.RUNNING for j in sweep), 600, "a pod to start"
            )
            await asyncio.sleep(3)  # (a few of the backend's polls)
            kb = _per_job_kb(baseline, count)
            Path(flag).touch()
            await sweep.cancel()
    finally:
        tracemalloc.stop()
        Path(flag).touch()
        server.stdin.close()
        await server.wait()
    return kb


async def run(rounds: int, quick: bool) -> list[Figure]:
    """Figures: KB per in-flight job on each backend (one sample per round, ≤ 2)."""
    count = 1_000 if quick else 10_000
    goal = f"≤ {GOAL_KB:.0f} KB at {count:,} in flight"
    measures: dict[str, tuple[str, Callable[[OpenSSH], Awaitable[float]]]] = {
        "local": ("pending", lambda _: local(count)),
        "Slurm": ("queued", lambda session: slurm(count, session)),
        "SGE": ("pending", lambda session: blocked("sge", count, session)),
        "PBS (Torque wrappers)": ("pending", lambda session: blocked("pbs", count, session)),
        "ssh": ("pending", lambda session: blocked("ssh", count, session)),
        # (the fake API server slows down past a few hundred tasks: fewer here)
        "kubernetes (fake API server)": ("pending", lambda _: kubernetes(min(count, 500))),
    }
    sizes = {name: min(count, 500) if "kubernetes" in name else count for name in measures}
    figures = {
        name: Figure(
            f"client memory per in-flight job, {name}, {sizes[name]:,} {how}",
            "KB",
            goal=goal,
            check=value_at_most(GOAL_KB),
        )
        for name, (how, _) in measures.items()
    }
    session = OpenSSH()
    await session.start()
    try:
        for number in range(1, min(rounds, 2) + 1):
            for name, (_, measure) in measures.items():
                try:
                    figures[name].samples.append(await measure(session))
                except Exception as error:
                    figures[name].error = f"{type(error).__name__}: {error}"
            print(
                f"  memory round {number}: "
                + ", ".join(f"{n} {f.samples[-1:]} KB" for n, f in figures.items()),
                flush=True,
            )
    finally:
        await session.close()
    for figure in figures.values():
        figure.notes.append("one sweep; tracemalloc's traced memory growth / jobs")
    return list(figures.values())
