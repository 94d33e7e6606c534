"""The `ssh` backend on the lab's sshd: concurrent calls against one call, and a sweep.

Calls: one warm `Client`; each round awaits one call three times, then 20 calls gathered
at once; the figure is the 20 calls' time over the round's median single call.
Sweep: 100 tasks mapped by a fresh `Client` (login included) against ONE OpenSSH login
starting the same number of `python3 -c` in parallel and waiting for them.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from clustrix import Client

from ._lab import lab_config, square, ssh_once
from ._report import Figure, ratio_at_most

CALLS_PER_ROUND = 3
SWEEP_FLOOR = 'for i in $(seq 0 $(($1 - 1))); do python3 -c "print($i*$i)" & done; wait'


async def _one(client: Client) -> float:
    started = time.perf_counter()
    if await client.submit(square, 7) != 49:
        raise RuntimeError("one ssh call returned a wrong result")
    return time.perf_counter() - started


async def _many(client: Client, count: int) -> float:
    started = time.perf_counter()
    results = await asyncio.gather(*(client.submit(square, i) for i in range(count)))
    if results != [i * i for i in range(count)]:
        raise RuntimeError(f"{count} concurrent ssh calls returned wrong results")
    return time.perf_counter() - started


async def _sweep_floor(tasks: int) -> float:
    started = time.perf_counter()
    out = (await ssh_once(SWEEP_FLOOR, str(tasks))).split()
    if sorted(map(int, out)) != sorted(x * x for x in range(tasks)):
        raise RuntimeError("the ssh floor printed wrong results")
    return time.perf_counter() - started


async def _sweep(tasks: int) -> float:
    started = time.perf_counter()
    async with Client(lab_config("ssh", "~/.clustrix-bench")) as client:
        results = await client.map(square, range(tasks), progress=False)
        elapsed = time.perf_counter() - started
    if results != [x * x for x in range(tasks)]:
        raise RuntimeError("the ssh sweep returned wrong results")
    return elapsed


async def run(rounds: int, quick: bool) -> list[Figure]:
    """Figures: 20 concurrent calls vs one call; a sweep vs one OpenSSH session."""
    tasks = 30 if quick else 100
    one = Figure("ssh backend: one call (warm client)", "s")
    many = Figure(
        "ssh backend: 20 concurrent calls",
        "s",
        floor_name="its one call",
        goal="≤ 3x one call",
        check=ratio_at_most(3),
    )
    swept = Figure(
        f"ssh backend: {tasks}-task sweep (fresh client)",
        "s",
        floor_name=f"one OpenSSH login, {tasks} python3 -c",
    )
    figures = [one, many, swept]
    try:
        async with Client(lab_config("ssh", "~/.clustrix-bench")) as client:
            await _one(client)  # log in, upload the runner
            for number in range(1, rounds + 1):
                singles = [await _one(client) for _ in range(CALLS_PER_ROUND)]
                one.samples += singles
                many.samples.append(await _many(client, 20))
                many.floor.append(statistics.median(singles))
                base = await _sweep_floor(tasks)
                swept.samples.append(await _sweep(tasks))
                swept.floor.append(base)
                print(
                    f"  ssh round {number}: one call {statistics.median(singles):.2f} s, "
                    f"20 calls {many.samples[-1]:.2f} s, {tasks}-task sweep "
                    f"{swept.samples[-1]:.2f} s vs floor {base:.2f} s",
                    flush=True,
                )
    except Exception as error:
        for figure in figures:
            figure.error = f"{type(error).__name__}: {error}"
    return figures
