"""A sweep on the local backend against `ProcessPoolExecutor.map`.

Both run the same trivial function over the same inputs with one worker process per
CPU, alternating round by round; the figure is clustrix's time over the pool's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time

from clustrix import Client

from ._lab import square
from ._report import Figure


def with_pool(tasks: int) -> float:
    """Seconds for `ProcessPoolExecutor.map` (pool start included)."""
    started = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        results = list(pool.map(square, range(tasks)))
    if results != [x * x for x in range(tasks)]:
        raise RuntimeError("the pool returned wrong results")
    return time.perf_counter() - started


async def with_clustrix(tasks: int) -> float:
    """Seconds for a fresh local `Client` mapping the same function."""
    started = time.perf_counter()
    async with Client(cluster_type="local") as client:
        results = await client.map(square, range(tasks), progress=False)
    if results != [x * x for x in range(tasks)]:
        raise RuntimeError("the local sweep returned wrong results")
    return time.perf_counter() - started


async def run(rounds: int, quick: bool) -> list[Figure]:
    """One figure: the sweep against the pool, per round."""
    tasks = 200 if quick else 1000
    figure = Figure(f"local backend: {tasks}-task sweep", "s", floor_name="ProcessPoolExecutor.map")
    try:
        for number in range(1, rounds + 1):
            pool = await asyncio.to_thread(with_pool, tasks)
            figure.samples.append(await with_clustrix(tasks))
            figure.floor.append(pool)
            print(
                f"  local sweep round {number}: clustrix {figure.samples[-1]:.2f} s, "
                f"pool {pool:.2f} s",
                flush=True,
            )
    except Exception as error:
        figure.error = f"{type(error).__name__}: {error}"
    return [figure]
