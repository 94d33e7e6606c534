"""A 200-task parameter sweep on the built-in local backend.

Run it with:  python examples/quickstart.py

Nothing to configure: without a config file clustrix uses `cluster_type="local"`,
which runs tasks in worker processes on this machine through the same payload and
runner path a cluster job uses. Point it at a cluster by writing a `clustrix.yml`
(see the README) — the code below does not change.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time

from clustrix import cluster


@cluster(cores=1, memory="512MB", time="00:05:00")
def estimate_pi(samples: int, seed: int) -> float:
    """Monte Carlo estimate of pi from `samples` random points."""
    rng = random.Random(seed)
    inside = sum(1 for _ in range(samples) if rng.random() ** 2 + rng.random() ** 2 <= 1.0)
    return 4.0 * inside / samples


async def main() -> None:
    tasks = 200
    started = time.perf_counter()
    sweep = estimate_pi.map([20_000] * tasks, range(tasks))  # one submission, 200 tasks
    estimates = await sweep  # a progress bar shows while this runs on a terminal
    elapsed = time.perf_counter() - started

    mean = statistics.fmean(estimates)
    print(f"tasks:     {len(estimates)} (states: {sweep.counts()})")
    print(f"pi ~       {mean:.5f}  (error {abs(mean - math.pi):.5f})")
    print(f"spread:    {statistics.stdev(estimates):.5f} between tasks")
    print(f"wall time: {elapsed:.2f} s")


if __name__ == "__main__":
    asyncio.run(main())
