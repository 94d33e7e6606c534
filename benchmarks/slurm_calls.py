"""Single and concurrent calls on the lab's Slurm, against one warm OpenSSH session.

The floor (the issue's): ONE warm OpenSSH session (ControlMaster: no login per call)
running `sbatch --wrap`, then `squeue -h -j ID` every 0.1 s until the job is gone,
then reading its output. clustrix: one warm `Client` (logged in, runner cached)
awaiting `submit`; then 20 and 200 calls gathered at once, whose Slurm submissions are
counted from the job ids clustrix reports (distinct ids before an array's ``_``).
Rounds alternate floor and clustrix.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from clustrix import Client

from ._lab import (
    OpenSSH,
    lab_config,
    per_tick,
    poll_counters,
    slurm_start_waits,
    square,
    submissions,
)
from ._report import Figure, ratio_at_most, value_at_most

FLOOR_ONE = r"""
f=$(mktemp ~/.cx-floor-out.XXXXXX)
id=$(sbatch --parsable -o "$f" --wrap 'python3 -c "print(7 * 7)"')
while [ -n "$(squeue -h -j "$id" 2>/dev/null)" ]; do sleep 0.1; done
echo "$id"; cat "$f"; rm -f "$f"
"""
# The scheduler alone running what 20 concurrent calls need: a 20-element array.
FLOOR_ARRAY = r"""
d=$(mktemp -d ~/.cx-floor-array.XXXXXX)
id=$(sbatch --parsable --array=0-$(($1 - 1)) -o "$d/%a" --wrap 'python3 -c "print(7 * 7)"')
while [ -n "$(squeue -h -j "$id" 2>/dev/null)" ]; do sleep 0.1; done
cat "$d"/* | wc -l; rm -rf "$d"
"""
PAIRS_PER_ROUND = 3


async def floor_one(session: OpenSSH) -> tuple[float, str]:
    """Seconds for the floor's one call, and its Slurm job id."""
    started = time.perf_counter()
    out = await session.run(FLOOR_ONE)
    elapsed = time.perf_counter() - started
    job_id, _, printed = out.strip().partition("\n")
    if printed.strip() != "49":
        raise RuntimeError(f"the floor's job printed {out!r}")
    return elapsed, job_id


async def floor_array(session: OpenSSH, count: int) -> float:
    """Seconds for a `count`-element array of the floor's job."""
    started = time.perf_counter()
    out = await session.run(FLOOR_ARRAY, str(count))
    elapsed = time.perf_counter() - started
    if out.strip() != str(count):
        raise RuntimeError(f"the floor's array printed {out!r}")
    return elapsed


async def one_call(client: Client) -> tuple[float, str]:
    """Seconds for one awaited call on the warm client, and its Slurm job id."""
    started = time.perf_counter()
    job = client.submit(square, 7)
    value = await job
    elapsed = time.perf_counter() - started
    if value != 49:
        raise RuntimeError(f"one call returned {value!r}")
    return elapsed, str(job.job_id)


async def concurrent(client: Client, count: int) -> tuple[float, int]:
    """Seconds for `count` calls gathered at once, and their Slurm submissions."""
    started = time.perf_counter()
    jobs = [client.submit(square, i) for i in range(count)]
    results = await asyncio.gather(*jobs)
    elapsed = time.perf_counter() - started
    wrong = [i for i, r in enumerate(results) if r != i * i]
    if wrong:
        raise RuntimeError(f"{len(wrong)} of {count} concurrent calls returned wrong results")
    return elapsed, submissions(job.job_id for job in jobs)


async def run(rounds: int, quick: bool) -> list[Figure]:
    """The figures: one call, 20 and 200 concurrent calls, commands per poll tick."""
    many = 50 if quick else 200
    floor_name = "one call, floor"
    one = Figure(
        "Slurm: one call (warm client)",
        "s",
        floor_name=floor_name,
        goal="≤ 0.8x the floor",
        check=ratio_at_most(0.8),
    )
    c20 = Figure(
        "Slurm: 20 concurrent calls, time",
        "s",
        floor_name=floor_name,
        goal="≤ 1.5x the floor's one call",
        check=ratio_at_most(1.5),
    )
    s20 = Figure(
        "Slurm: 20 concurrent calls, submissions", "sbatch", goal="≤ 2", check=value_at_most(2)
    )
    cmany = Figure(
        f"Slurm: {many} concurrent calls, time",
        "s",
        floor_name=floor_name,
        goal="— (every result right)",
    )
    smany = Figure(
        f"Slurm: {many} concurrent calls, submissions",
        "sbatch",
        goal="≤ 5, every result right",
        check=value_at_most(5),
    )
    own = Figure(
        "Slurm: one call, after Slurm started its job (submit->start wait taken off)",
        "s",
        floor_name="the floor, the same way",
        goal="— (what clustrix adds or saves)",
    )
    bound = Figure(
        "Slurm: one call, Slurm's own submit->start wait (slurmctld's log)",
        "s",
        floor_name=floor_name,
        goal="— (the lowest ratio any client could reach)",
    )
    array = Figure(
        "Slurm: 20 concurrent calls vs a 20-element sbatch --array",
        "s",
        floor_name="20-element array, floor",
        goal="— (the scheduler's own time for 20 elements)",
    )
    tick_one = Figure("Slurm: scheduler commands per poll tick, one call", "cmd/tick")
    tick_many = Figure(f"Slurm: scheduler commands per poll tick, {many} calls", "cmd/tick")
    figures = [one, own, bound, c20, array, s20, cmany, smany, tick_one, tick_many]
    session = OpenSSH()
    try:
        await session.start()
        async with Client(lab_config("slurm", "~/.clustrix-bench")) as client:
            await one_call(client)  # log in, upload the runner: warm from here on
            await floor_one(session)
            for number in range(1, rounds + 1):
                pairs = []
                before = poll_counters(client)
                for _ in range(PAIRS_PER_ROUND):
                    pairs.append((await floor_one(session), await one_call(client)))
                rate = per_tick(before, poll_counters(client))
                if rate is not None:
                    tick_one.samples.append(rate)
                waits = slurm_start_waits(i for pair in pairs for _, i in pair)
                for (floor, floor_id), (ours, our_id) in pairs:
                    one.samples.append(ours)
                    one.floor.append(floor)
                    if our_id in waits and floor_id in waits:
                        own.samples.append(ours - waits[our_id])
                        own.floor.append(floor - waits[floor_id])
                        bound.samples.append(waits[our_id])
                        bound.floor.append(floor)
                base = statistics.median(floor for (floor, _), _ in pairs)
                array.floor.append(await floor_array(session, 20))
                elapsed, count = await concurrent(client, 20)
                c20.samples.append(elapsed)
                c20.floor.append(base)
                array.samples.append(elapsed)
                s20.samples.append(count)
                before = poll_counters(client)
                elapsed, count = await concurrent(client, many)
                rate = per_tick(before, poll_counters(client))
                if rate is not None:
                    tick_many.samples.append(rate)
                cmany.samples.append(elapsed)
                cmany.floor.append(base)
                smany.samples.append(count)
                print(
                    f"  slurm calls round {number}: floor {base:.2f} s, one call "
                    f"{statistics.median(one.samples[-PAIRS_PER_ROUND:]):.2f} s, 20 calls "
                    f"{c20.samples[-1]:.2f} s ({s20.samples[-1]:.0f} sbatch; a 20-element "
                    f"array: {array.floor[-1]:.2f} s), {many} calls "
                    f"{cmany.samples[-1]:.2f} s ({smany.samples[-1]:.0f} sbatch)",
                    flush=True,
                )
    except Exception as error:
        for figure in figures:
            figure.error = f"{type(error).__name__}: {error}"
    finally:
        await session.close()
    for figure in (tick_one, tick_many):
        if not figure.samples and figure.error is None:
            figure.notes.append("n/a: the poll counters are not readable on this version")
    one.notes.append(f"{PAIRS_PER_ROUND} floor/clustrix pairs per round")
    if not bound.samples and bound.error is None:
        bound.notes.append("n/a: slurmctld's log was not readable (run as root on the lab)")
    return figures
