"""500-task sweeps on the lab's Slurm against the 500-element array floor, and the peers.

The floor (LAB.md, PEERS.md): ONE OpenSSH login that writes a job script, runs
`sbatch --parsable --array=0-(N-1)` (each task `python3 -c`), polls `squeue -h -j ID`
every 0.1 s until the array is gone and reads every output back. clustrix: a fresh
`Client` per sweep (its login included) mapping a trivial function declared
``time="00:05:00"``: default chunking, ``chunksize=1`` and ``chunksize=25``. Each round
runs the floor, the three sweeps and the selected peers one after the other. The sshd
logins of each clustrix sweep and its scheduler commands per poll tick are counted.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from clustrix import Client

from . import peers
from ._lab import LAB, LoginCounter, lab_config, per_tick, poll_counters, square, ssh_once
from ._report import Figure, ratio_at_most, value_at_most

FLOOR = r"""
set -e
d=$(mktemp -d ~/.cx-floor.XXXXXX); cd "$d"
cat > job.sh <<'J'
#!/bin/sh
i=$SLURM_ARRAY_TASK_ID
python3 -c "print($i * $i)" > out.$i
J
id=$(sbatch --parsable --array=0-$(($1 - 1)) -o /dev/null job.sh)
while [ -n "$(squeue -h -j "$id" 2>/dev/null)" ]; do sleep 0.1; done
cat out.* | wc -l
cd; rm -rf "$d"
"""
DECLARED = "00:05:00"
REFERENCE = {"submitit": "2.2x", "dask": "0.12x"}


async def floor(tasks: int) -> float:
    """Seconds for the array floor over one fresh OpenSSH login."""
    started = time.perf_counter()
    out = await ssh_once(FLOOR, str(tasks))
    elapsed = time.perf_counter() - started
    if int(out.split()[-1]) != tasks:
        raise RuntimeError(f"the floor read {out.split()[-1]} outputs of {tasks}")
    return elapsed


async def sweep(tasks: int, chunksize: int | None) -> tuple[float, int | None, float | None]:
    """Seconds for one sweep on a fresh client; its sshd logins; commands per poll tick."""
    config = lab_config("slurm", "~/.clustrix-bench")
    with LoginCounter(LAB["ports"]["slurm"]) as logins:
        started = time.perf_counter()
        async with Client(config) as client:
            view = client.options(time=DECLARED)
            results = await view.map(square, range(tasks), chunksize=chunksize, progress=False)
            elapsed = time.perf_counter() - started
            rate = per_tick((0, 0), poll_counters(client))
    if results != [x * x for x in range(tasks)]:
        raise RuntimeError(f"a {tasks}-task sweep returned wrong results")
    return elapsed, logins.logins, rate


async def run(rounds: int, quick: bool, with_clustrix: bool, with_peers: list[str]) -> list[Figure]:
    """The sweep figures (clustrix and/or peers), each against the floor of its round."""
    tasks = 100 if quick else 500
    floor_name = f"{tasks}-element array"
    default = Figure(
        f"Slurm: {tasks}-task sweep, default map, time={DECLARED}",
        "s",
        floor_name=floor_name,
        goal="≤ 0.12x the floor",
        check=ratio_at_most(0.12),
    )
    chunk1 = Figure(
        f"Slurm: {tasks}-task sweep, chunksize=1",
        "s",
        floor_name=floor_name,
        goal="≤ 1.1x the floor",
        check=ratio_at_most(1.1),
    )
    chunk25 = Figure(f"Slurm: {tasks}-task sweep, chunksize=25", "s", floor_name=floor_name)
    versus = Figure(
        f"Slurm: {tasks}-task sweep, default map vs chunksize=25",
        "s",
        floor_name="chunksize=25",
        goal="≤ 1.5x the best explicit chunksize",
        check=ratio_at_most(1.5),
    )
    logins = Figure(
        "SSH logins per sweep (fresh client, from sshd's log)",
        "logins",
        goal="1 (one connection per client)",
        check=value_at_most(1),
    )
    ticks = Figure(
        f"Slurm: scheduler commands per poll tick, {tasks}-task sweep (chunksize=1)", "cmd/tick"
    )
    figures = [default, chunk1, chunk25, versus, logins, ticks] if with_clustrix else []
    contenders: list[tuple[Figure, Callable[[], Awaitable[float]]]] = []

    async def clustrix_sweep(chunksize: int | None, collect: bool) -> float:
        elapsed, count, rate = await sweep(tasks, chunksize)
        if count is not None:
            logins.samples.append(count)
        if collect and rate is not None:
            ticks.samples.append(rate)
        return elapsed

    if with_clustrix:
        await sweep(4, 1)  # upload the runner once: every later sweep finds it cached
        contenders += [
            (default, lambda: clustrix_sweep(None, False)),
            (chunk1, lambda: clustrix_sweep(1, True)),
            (chunk25, lambda: clustrix_sweep(25, False)),
        ]
    python: Path | None = None
    for peer in with_peers:
        title = "submitit, map_array" if peer == "submitit" else "dask-jobqueue, 4 worker jobs"
        figure = Figure(
            f"peer: {title}, {tasks} tasks, on the login node",
            "s",
            floor_name=floor_name,
            goal=f"reference: {REFERENCE[peer]} (PEERS.md)",
        )
        figures.append(figure)
        try:
            python = python or await peers.ensure_venv()
        except Exception as error:
            figure.error = f"installing the peers failed: {error}"
            continue
        contenders.append((figure, _peer_call(figure, python, peer, tasks)))
    for number in range(1, rounds + 1):
        try:
            base = await floor(tasks)
        except Exception as error:
            for figure in figures:
                figure.error = f"floor: {type(error).__name__}: {error}"
            continue
        line = [f"floor {base:.1f} s"]
        for figure, measure in contenders:
            try:
                elapsed = await measure()
            except Exception as error:
                figure.error = f"{type(error).__name__}: {error}"
                line.append(f"{figure.name}: error")
                continue
            figure.samples.append(elapsed)
            figure.floor.append(base)
            line.append(f"{figure.name.split(', ', 1)[-1]} {elapsed:.1f} s")
        if (
            default.samples
            and chunk25.samples
            and len(default.samples) == number == len(chunk25.samples)
        ):
            versus.samples.append(default.samples[-1])
            versus.floor.append(chunk25.samples[-1])
        print(f"  sweeps round {number}: " + " | ".join(line), flush=True)
    if with_clustrix and not ticks.samples:
        ticks.notes.append("n/a: the poll counters are not readable on this version")
    logins.notes.append("only logins from this process's own sockets count (matched by port)")
    return figures


def _peer_call(
    figure: Figure, python: Path, peer: str, tasks: int
) -> Callable[[], Awaitable[float]]:
    async def call() -> float:
        elapsed, versions = await peers.run_peer(python, peer, tasks)
        note = ", ".join(f"{k} {v}" for k, v in versions.items())
        if note not in figure.notes:
            figure.notes.append(note)
        return elapsed

    return call
