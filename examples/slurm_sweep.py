"""A parameter sweep on a Slurm cluster: one array job, a progress bar, a results table.

Run it from a directory holding a `clustrix.yml` that describes your cluster
(`examples/clustrix.example.yml` documents the fields):

    cp examples/clustrix.example.yml clustrix.yml   # then edit host, user, partition
    python examples/slurm_sweep.py

Without a `clustrix.yml` the same code runs on the built-in local backend.
"""

from __future__ import annotations

import asyncio
import getpass
import itertools
import os
import random
import socket
import statistics

from rich.console import Console
from rich.table import Table

from clustrix import cluster, get_config


# `time` of at most 10 minutes declares the tasks short: clustrix may then pack several
# of them into one array element (see docs/performance.md); the results do not change.
@cluster(cores=1, memory="1GB", time="00:05:00")
def random_walk(step: float, steps: int, seed: int) -> dict[str, object]:
    """The mean distance from the origin of 200 walks of `steps` steps of length `step`."""
    rng = random.Random(seed)  # seeded per task: every task draws its own numbers
    distances = []
    for _ in range(200):
        x = y = 0.0
        for _ in range(steps):
            x += rng.uniform(-step, step)
            y += rng.uniform(-step, step)
        distances.append((x * x + y * y) ** 0.5)
    return {
        "mean": statistics.fmean(distances),
        "host": socket.gethostname(),  # where it ran, to show in the table
        "user": getpass.getuser(),
        "job": os.environ.get("SLURM_JOB_ID", "-"),  # set inside a Slurm job
    }


async def main() -> None:
    config = get_config()  # ./clustrix.yml, ~/.clustrix/config.yml, CLUSTRIX_* variables
    print(f"running on: {config.cluster_type} {config.cluster_host or ''}".rstrip())

    steps_list, step_sizes = [100, 400, 1600], [0.5, 1.0, 2.0]
    grid = list(itertools.product(step_sizes, steps_list))  # 9 parameter combinations
    seeds = range(len(grid))
    # ONE submission: a Slurm array job with one element per combination. The bar is
    # drawn on a terminal by default; progress=True keeps it in logs (CI, nohup) too.
    sweep = random_walk.map(
        [step for step, _ in grid], [steps for _, steps in grid], seeds, progress=True
    )
    results = await sweep  # values in input order; the first failure would be raised

    table = Table(title=f"random walks ({len(results)} tasks, {sweep.counts()})")
    for column in ("step", "steps", "mean distance", "ratio to step*sqrt(steps)", "ran on"):
        table.add_column(column, justify="right")
    for (step, steps), result in zip(grid, results, strict=True):
        mean = float(result["mean"])  # type: ignore[arg-type]
        where = f"{result['user']}@{result['host']} job {result['job']}"
        table.add_row(
            str(step), str(steps), f"{mean:.2f}", f"{mean / (step * steps**0.5):.3f}", where
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    asyncio.run(main())
