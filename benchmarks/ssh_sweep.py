"""A 100-task sweep on the `ssh` backend against one OpenSSH session doing it by hand.

    python benchmarks/ssh_sweep.py [--tasks 100] [--rounds 5]

Needs the test lab (tests/lab/up.sh). The floor: ONE `ssh` login that starts the same
number of `python3 -c` commands in parallel and waits for them. clustrix: a fresh
`Client` (so its login is included) running `map` over the lab's sshd, results back
in this process. Both alternate round by round; per-round ratios and the median are
printed, with the sshd logins clustrix made.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import time

from _lab import LAB, lab_config

from clustrix import Client


def square(x: int) -> int:
    return x * x


def floor(tasks: int) -> float:
    script = f'for i in $(seq 0 {tasks - 1}); do python3 -c "print($i*$i)" & done; wait'
    started = time.perf_counter()
    out = subprocess.run(
        ["ssh", "-F", LAB["ssh_config"], "clustrix-lab", script],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(map(int, out)) == sorted(x * x for x in range(tasks))
    return time.perf_counter() - started


async def ours(tasks: int) -> tuple[float, int]:
    config = lab_config("ssh", "~/.clustrix-bench")
    started = time.perf_counter()
    async with Client(config) as client:
        results = await client.map(square, range(tasks), progress=False)
        logins = sum(t.logins for t in client._transports.values())
    assert results == [x * x for x in range(tasks)]
    return time.perf_counter() - started, logins


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(ours(4))  # warm the remote cache (bundle upload), as any later run finds it
    ratios = []
    for number in range(1, options.rounds + 1):
        base = floor(options.tasks)
        mine, logins = asyncio.run(ours(options.tasks))
        ratios.append(mine / base)
        print(
            f"round {number}: clustrix {mine:.2f} s ({logins} login), "
            f"one OpenSSH session {base:.2f} s, ratio {mine / base:.2f}"
        )
    print(
        f"median ratio clustrix/OpenSSH floor, {options.tasks} tasks: "
        f"{statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
