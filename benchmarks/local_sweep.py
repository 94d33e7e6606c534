"""A 1,000-task sweep on the local backend against ProcessPoolExecutor.map.

    python benchmarks/local_sweep.py [--tasks 1000] [--rounds 5]

Both run the same trivial function over the same inputs with one worker process per
CPU, alternating round by round; the ratio (clustrix / pool) per round and its median
are printed. Seconds are shown for context only: these machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import statistics
import time

from clustrix import Client


def work(x: int) -> int:
    return x * x


def with_pool(tasks: int) -> float:
    started = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        results = list(pool.map(work, range(tasks)))
    assert results == [x * x for x in range(tasks)]
    return time.perf_counter() - started


async def with_clustrix(tasks: int) -> float:
    started = time.perf_counter()
    async with Client(cluster_type="local") as client:
        results = await client.map(work, range(tasks), progress=False)
    assert results == [x * x for x in range(tasks)]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    ratios = []
    for round_number in range(1, options.rounds + 1):
        pool = with_pool(options.tasks)
        ours = asyncio.run(with_clustrix(options.tasks))
        ratios.append(ours / pool)
        print(
            f"round {round_number}: clustrix {ours:.3f} s, ProcessPoolExecutor {pool:.3f} s, "
            f"ratio {ours / pool:.2f}"
        )
    print(
        f"median ratio clustrix/ProcessPoolExecutor.map over {options.tasks} tasks: "
        f"{statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
