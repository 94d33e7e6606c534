"""Client memory per in-flight job (tracemalloc), on the local backend and on Slurm.

Local: one sweep of N tasks that block on a flag file (so all but the running few stay
pending). Slurm: one sweep of N one-task elements held in the queue by
``--begin=now+1hour`` (passed through `extra`), polled by the client for a few ticks.
The figure is the growth of Python's traced memory from just before the sweep to
the moment all N are in flight, divided by N. Afterwards every task is cancelled
(on Slurm, also `scancel` of the array ids over OpenSSH, should the sweep's cancel fail).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from clustrix import Client, JobState, Sweep

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
            await _until(lambda: all(j.job_id for j in sweep), 600, "the sweep's submission")
            ticks = poll_counters(client)
            if ticks is None:
                await asyncio.sleep(5)
            else:
                await _until(
                    lambda: (poll_counters(client) or (0, 0))[1] >= ticks[1] + 3,
                    120,
                    "three poll ticks",
                )
            kb = _per_job_kb(baseline, count)
            await sweep.cancel()
    finally:
        tracemalloc.stop()
        if sweep is not None:
            ids = sorted({j.job_id.split("_", 1)[0] for j in sweep if j.job_id})
            if ids:
                await session.run(f"scancel {shlex.join(ids)} 2>/dev/null; true")
    return kb


async def run(rounds: int, quick: bool) -> list[Figure]:
    """Figures: KB per in-flight job on local and on Slurm (one sample per round, ≤ 2)."""
    count = 1_000 if quick else 10_000
    goal = f"≤ {GOAL_KB:.0f} KB at {count:,} in flight"
    on_local = Figure(
        f"client memory per in-flight job, local, {count:,} pending",
        "KB",
        goal=goal,
        check=value_at_most(GOAL_KB),
    )
    on_slurm = Figure(
        f"client memory per in-flight job, Slurm, {count:,} queued",
        "KB",
        goal=goal,
        check=value_at_most(GOAL_KB),
    )
    session = OpenSSH()
    await session.start()
    try:
        for number in range(1, min(rounds, 2) + 1):
            for figure, measure in ((on_local, local), (on_slurm, None)):
                try:
                    kb = await (measure(count) if measure else slurm(count, session))
                    figure.samples.append(kb)
                except Exception as error:
                    figure.error = f"{type(error).__name__}: {error}"
            print(
                f"  memory round {number}: local {on_local.samples[-1:]} KB, slurm "
                f"{on_slurm.samples[-1:]} KB",
                flush=True,
            )
    finally:
        await session.close()
    for figure in (on_local, on_slurm):
        figure.notes.append("one sweep; tracemalloc's traced memory growth / jobs")
    return [on_local, on_slurm]
