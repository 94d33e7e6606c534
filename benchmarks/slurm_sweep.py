"""A 500-task sweep on the lab's Slurm over SSH against the scheduler's own floor.

    python benchmarks/slurm_sweep.py [--tasks 500] [--rounds 3] [--chunksize 25]

Needs the test lab (tests/lab/up.sh). The floor (LAB.md, PEERS.md): ONE OpenSSH
session that writes a job script, runs `sbatch --parsable --array=0-(N-1)` (each
task `python3 -c`), polls `squeue -h -j ID` every 0.1 s until the array is gone and
reads every output back. clustrix: a fresh Client over SSH (its login included)
mapping a trivial function, unchunked and chunked. Rounds alternate; ratios to the
floor of the same round are printed, with logins and poll commands per tick.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import subprocess
import time

from _lab import LAB, lab_config

from clustrix import Client

FLOOR = r"""
set -e
d=$(mktemp -d ~/.floor.XXXXXX); cd "$d"
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


def square(x: int) -> int:
    return x * x


def floor(tasks: int) -> float:
    started = time.perf_counter()
    remote = shlex.join(["sh", "-c", FLOOR, "sh", str(tasks)])
    out = subprocess.run(
        ["ssh", "-F", LAB["ssh_config"], "clustrix-lab", remote],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert int(out.split()[-1]) == tasks, out
    return time.perf_counter() - started


async def ours(tasks: int, chunksize: int | None) -> tuple[float, int, float]:
    config = lab_config("slurm", "~/.clustrix-bench")
    started = time.perf_counter()
    async with Client(config) as client:
        results = await client.map(square, range(tasks), chunksize=chunksize, progress=False)
        elapsed = time.perf_counter() - started
        logins = sum(t.logins for t in client._transports.values())
        backend = next(iter(client._backends.values()))
        per_tick = backend.poll_commands / max(1, backend.poll_ticks)
    assert results == [x * x for x in range(tasks)]
    return elapsed, logins, per_tick


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunksize", type=int, default=25)
    options = parser.parse_args()
    asyncio.run(ours(2, None))  # warm the remote cache (bundle upload)
    plain, chunked = [], []
    for number in range(1, options.rounds + 1):
        base = floor(options.tasks)
        mine, logins, per_tick = asyncio.run(ours(options.tasks, None))
        packed, _, _ = asyncio.run(ours(options.tasks, options.chunksize))
        plain.append(mine / base)
        chunked.append(packed / base)
        print(
            f"round {number}: floor {base:.1f} s | clustrix {mine:.1f} s ratio {mine / base:.2f} "
            f"({logins} login, {per_tick:.1f} commands/tick) | chunksize={options.chunksize} "
            f"{packed:.1f} s ratio {packed / base:.2f}"
        )
    print(
        f"median ratio to the floor, {options.tasks} tasks: unchunked "
        f"{statistics.median(plain):.2f}, chunked {statistics.median(chunked):.2f}"
    )


if __name__ == "__main__":
    main()
