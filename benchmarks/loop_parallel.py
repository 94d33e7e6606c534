"""Automatic loop parallelization on the local backend: cores=4 against parallel=False.

    python benchmarks/loop_parallel.py [--items 16] [--work 400000] [--rounds 3]

The same CPU-bound function runs as one job each way, alternating round by round; its
loop is proven independent, so with ``cores=4`` its iterations run in one worker
process per allocated core (at most the CPUs this machine has). Printed: seconds per
round, the speed-up (sequential / parallel) per round and its median, and the number
of cores the loop could use here.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import clustrix
from clustrix import Client, cluster
from clustrix.oncluster.parallel_loop import allocated_cores


def simulate(items: int, work: int) -> list[float]:
    results = []
    for seed in range(items):
        x = float(seed)
        for step in range(work):
            x = (x * 1.000001 + step) % 1000.0
        results.append(x)
    return results


async def timed(fn: clustrix.RemoteFunction[..., list[float]], items: int, work: int) -> float:
    started = time.perf_counter()
    results = await fn(items, work)
    assert len(results) == items
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--work", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    parallel = cluster(cores=4)(simulate)
    sequential = cluster(cores=4, parallel=False)(simulate)
    print(clustrix.explain(parallel))
    speedups = []

    async def run() -> None:
        async with Client(cluster_type="local"):
            reference = await sequential(options.items, 1000)
            assert await parallel(options.items, 1000) == reference  # the same floats
            for number in range(1, options.rounds + 1):
                one = await timed(sequential, options.items, options.work)
                many = await timed(parallel, options.items, options.work)
                speedups.append(one / many)
                print(
                    f"round {number}: parallel=False {one:.2f} s, cores=4 {many:.2f} s, "
                    f"speed-up {one / many:.2f}"
                )

    asyncio.run(run())
    print(
        f"median speed-up cores=4 vs parallel=False: {statistics.median(speedups):.2f} "
        f"(the loop could use {allocated_cores(4)} core(s) on this machine)"
    )


if __name__ == "__main__":
    main()
